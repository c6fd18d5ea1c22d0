"""Authenticate and authorize from the path and headers, before a byte of the body is read.

Both planes run this middleware in front of their routes: no or a bad token is a 401, a
project the token holds no role on is the same 404 a missing project gets, and a body over
the plane's limit is a 413. Anonymous refusals are counted in memory, never written to the
database (an anonymous flood must not turn into writes); a refused call by a known user
(another project's data) is written to the audit log with who made it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kosmos.platform import audit
from kosmos.platform.api.errors import error_body
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Role
from kosmos.platform.errors import KosmosError, NotFound, Unauthenticated
from kosmos.platform.identity.access import AccessCache, Principal, authenticate, require_project
from kosmos.platform.identity.names import name_problem
from kosmos.platform.logs import request_id_var

log = logging.getLogger("kosmos.api")

DISCARD_FACTOR = 4
"""A refused body up to this many times the limit is read and dropped, so the refusal reaches
the client (see ``_discard``); a larger one is cut off."""

refusals: Counter[str] = Counter()
"""Requests refused before the body, by error code (counted in memory, never written)."""

Guard = Callable[[str], tuple[bool, str | None]]
"""path -> (whether it needs a token, the project it names or None). A project that is not a
valid name is refused like a missing one (after the token is checked)."""


class BodyTooLarge(Exception):
    pass


class AuthFirst:
    """Authenticate and authorize from the path and headers alone, then bound the body.

    ``guard`` says which paths need a token and which project a path names; ``limit_of`` gives
    a route's body limit when it differs from ``max_body_bytes`` (an upload route).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        database: Database,
        cache: AccessCache,
        max_body_bytes: int,
        guard: Guard,
        limit_of: Callable[[Scope], int | None] | None = None,
        role_of: Callable[[Scope], Role | None] | None = None,
    ) -> None:
        self.app = app
        self.database = database
        self.cache = cache
        self.max_body_bytes = max_body_bytes
        self.guard = guard
        self.limit_of = limit_of
        self.role_of = role_of

    def _check(
        self, token: str | None, project: str | None, scope: Scope, role: Role = Role.viewer
    ) -> Principal:
        refused: KosmosError | None = None
        with self.database.transaction() as session:  # one round trip: the token, then the project
            principal = authenticate(session, token)
            if project is not None:
                try:
                    require_project(session, principal, project, role)
                except KosmosError as exc:
                    refused = exc
        if refused is not None:
            audit_denied(self.database, principal, scope, project or "", refused)
            raise refused
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        try:
            needs_token, project = self.guard(scope["path"])
            if not needs_token:
                await self.app(scope, receive, send)
                return
            role = (self.role_of(scope) if self.role_of and project else None) or Role.viewer
            principal = await self._authorize(scope, project, role)
            if self.limit_of is not None:
                limit = self.limit_of(scope) or limit
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                raise BodyTooLarge
        except KosmosError as exc:
            refusals[exc.code] += 1
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else {}
            await _discard(receive, _content_length(scope), limit)
            await _send_json(send, exc.status_code, error_body(exc.code, exc.message, exc.details), headers)
            return
        except BodyTooLarge:
            refusals["payload_too_large"] += 1
            await _discard(receive, _content_length(scope), DISCARD_FACTOR * limit)
            await _send_json(send, 413, _too_large(limit), {"Connection": "close"})
            return
        state = scope.setdefault("state", {})
        state["principal"], state["checked_project"] = principal, project
        state["checked_role"] = role if project is not None else Role.viewer
        await self.app(scope, _bounded(receive, limit), send)

    async def _authorize(self, scope: Scope, project: str | None, role: Role = Role.viewer) -> Principal:
        token = _bearer(scope)
        if not token:
            raise Unauthenticated("missing API token: send 'Authorization: Bearer <token>'")
        if project is not None and name_problem(project):
            await run_in_threadpool(self._check, token, None, scope)  # a bad token is still a 401
            raise NotFound(f"project {project!r} not found")
        key = project if role is Role.viewer or project is None else f"{project}@{role.name}"
        principal = self.cache.get(token, key)
        if principal is None:
            principal = await run_in_threadpool(self._check, token, project, scope, role)
            self.cache.put(token, key, principal)
        return principal


def audit_denied(
    database: Database, principal: Principal, scope: Scope, project: str, exc: KosmosError
) -> None:
    """A known user refused on a project: one audit row of its own (the refusal still goes out)."""
    try:
        with database.transaction() as session:
            audit.record(
                session,
                actor=principal.user_name,
                action=audit.route_action(scope["method"], scope["path"]),
                object_type="route",
                object_name=scope["path"][:256],
                project=project[:128],
                outcome="denied",
                request_id=request_id_var.get(),
                details={"reason": exc.message[:500]},
            )
    except Exception:
        log.exception("could not record a refused call in the audit log")


def _bounded(receive: Receive, limit: int) -> Receive:
    """A body sent without Content-Length (chunked) is cut off at the limit too."""
    seen = 0

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
    return error_body(
        "payload_too_large",
        f"request body is over this route's limit of {limit} bytes: send it in parts (the SDK does: "
        "kosmos.features.get_training_set, predict_batch and the table and dataset uploads)",
    )


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
