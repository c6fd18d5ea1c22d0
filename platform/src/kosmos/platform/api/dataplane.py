"""The data plane's ASGI app: the routes plugins declare for Ray Serve's ingress, under ``/{project}``.

    client --> Serve HTTP proxy --> [AuthFirst] --> /{project}/...  (plugin data-plane routes)

``AuthFirst`` decides before a byte of the body is read: no or a bad token is a 401, a
project the token holds no role on is the same 404 a missing project gets, and a body
over ``dataplane.max_body_bytes`` is a 413. A success is remembered for
``dataplane.auth_cache_seconds`` (at most 5 s), so the metadata database is read once per
token and project in that window, never per request. Refusals are counted, not written
to the database: an anonymous flood must not turn into database writes.

Which plugin serves what is the plugins' business (``Plugin.dataplane_router``); the
platform names none of them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kosmos.platform.api.errors import error_body, install_error_handlers
from kosmos.platform.api.middleware import RequestContextMiddleware
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Role
from kosmos.platform.errors import KosmosError, NotFound, Unauthenticated
from kosmos.platform.identity.access import AccessCache, Principal, authenticate, require_project
from kosmos.platform.identity.names import name_problem
from kosmos.platform.plugins import installed_plugins
from kosmos.platform.settings import Settings

DISCARD_FACTOR = 4
"""A refused body up to this many times ``dataplane.max_body_bytes`` is read and dropped, so the
refusal reaches the client (see ``_discard``); a larger one is cut off."""
OPEN_PATHS = {"/healthz"}  # not /-/healthz: Ray Serve's proxy answers that one itself
HEALTHY = {"status": "ok", "plane": "data"}
"""What the ingress's /healthz answers (plus the ``settings`` it runs with, see ``health``)."""


def health(settings: Settings) -> dict[str, str]:
    """/healthz's answer: names the data plane and the settings it runs with (a short hash), so
    a caller can tell a replica of a new settings version from one of the old that drains."""
    return {**HEALTHY, "settings": hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:12]}


refusals: Counter[str] = Counter()
"""Requests refused before the body, by error code (counted in memory, never written)."""


class BodyTooLarge(Exception):
    pass


class AuthFirst:
    """Authenticate and authorize from the path and headers alone, then bound the body."""

    def __init__(self, app: ASGIApp, *, database: Database, cache: AccessCache, max_body_bytes: int) -> None:
        self.app = app
        self.database = database
        self.cache = cache
        self.max_body_bytes = max_body_bytes

    def _check(self, token: str | None, project: str) -> Principal:
        with self.database.transaction() as session:
            principal = authenticate(session, token)
            require_project(session, principal, project, Role.viewer)
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._authorize(scope)
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                raise BodyTooLarge
        except KosmosError as exc:
            refusals[exc.code] += 1
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else {}
            await _discard(receive, _content_length(scope), self.max_body_bytes)
            await _send_json(send, exc.status_code, error_body(exc.code, exc.message, exc.details), headers)
            return
        except BodyTooLarge:
            refusals["payload_too_large"] += 1
            await _discard(receive, _content_length(scope), DISCARD_FACTOR * self.max_body_bytes)
            await _send_json(send, 413, _too_large(self.max_body_bytes), {"Connection": "close"})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, self._bounded(receive), send)

    async def _authorize(self, scope: Scope) -> Principal:
        project = scope["path"].lstrip("/").split("/", 1)[0]
        token = _bearer(scope)
        if not token:
            raise Unauthenticated("missing API token: send 'Authorization: Bearer <token>'")
        if name_problem(project):
            raise NotFound(f"project {project!r} not found")
        principal = self.cache.get(token, project)
        if principal is None:
            principal = await run_in_threadpool(self._check, token, project)
            self.cache.put(token, project, principal)
        return principal

    def _bounded(self, receive: Receive) -> Receive:
        """A body sent without Content-Length (chunked) is cut off at the limit too."""
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # FastAPI passes an HTTPException from the body read through
                    if message.get("more_body"):
                        await _discard(receive, None, DISCARD_FACTOR * limit - seen)
                    raise HTTPException(413, _too_large(limit)["error"]["message"])
            return message

        return wrapped


async def _discard(receive: Receive, declared: int | None, bound: int) -> None:
    """Read and drop the rest of a refused request's body, up to ``bound`` bytes, unparsed.

    Answering while the client still sends makes the server close a socket with unread bytes,
    and TCP then resets the connection: the client may never see the 4xx. A body declared
    larger than ``bound`` is not read at all (its sender gets the reset).
    """
    if declared is not None and declared > bound:
        return
    seen = 0
    while seen <= bound:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body"):
            return


def _too_large(limit: int) -> dict[str, Any]:
    return error_body("payload_too_large", f"request body is over the data plane's limit of {limit} bytes")


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def create_dataplane_app(settings: Settings, database: Database) -> FastAPI:
    """The data plane's app: every plugin's data-plane router under ``/{project}``."""
    app = FastAPI(
        title="Kosmos data plane",
        version="0.1.0",
        description="Predictions, online features and the OpenAI-compatible API, per project.",
    )
    app.state.settings = settings
    app.state.database = database
    app.state.access_cache = AccessCache(settings.dataplane.auth_cache_seconds)
    answer = health(settings)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The ingress replica is up (its answer names the data plane, unlike Serve's own)."""
        return answer

    projects = APIRouter(prefix="/{project}")
    for installed in installed_plugins():
        if installed.plugin.dataplane_router is not None:
            projects.include_router(installed.plugin.dataplane_router())
    app.include_router(projects)
    install_error_handlers(app)
    app.add_middleware(
        AuthFirst,
        database=database,
        cache=app.state.access_cache,
        max_body_bytes=settings.dataplane.max_body_bytes,
    )
    app.add_middleware(RequestContextMiddleware)
    return app
