"""Request ids and access logging as a plain ASGI middleware (no per-request task hop)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kosmos.platform.api.errors import internal_error_response
from kosmos.platform.logs import request_id_var

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
access_log = logging.getLogger("kosmos.access")


class RequestContextMiddleware:
    """Gives every request an id (the caller's X-Request-ID when well-formed), echoes it
    in the response, logs one access line, and turns an unhandled error into the JSON 500.

    ``echo=False`` behind Ray Serve's proxy: it passes its request id in (the caller's, or one it
    made) and sets the same X-Request-Id on the response itself, so echoing it would send it twice."""

    def __init__(self, app: ASGIApp, echo: bool = True) -> None:
        self.app = app
        self.echo = echo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                if self.echo:
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            access_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not status["sent"]:
                await internal_error_response()(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s %.1fms",
                    scope["method"],
                    scope["path"],
                    status["code"],
                    (time.perf_counter() - started) * 1000,
                )
            request_id_var.reset(token)
