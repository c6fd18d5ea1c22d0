"""FastAPI dependencies: authentication, project access, and the per-request transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kosmos.platform.context import CallContext
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Role
from kosmos.platform.identity.access import AccessCache, Principal, authenticate, require_project
from kosmos.platform.logs import request_id_var
from kosmos.platform.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer kos_...`")


def database(request: Request) -> Database:
    return request.app.state.database


def _check_in_database(request: Request, token: str | None, project: str | None) -> Principal:
    with database(request).transaction() as session:
        principal = authenticate(session, token)
        request.state.principal = principal
        if project is not None:
            require_project(session, principal, project, Role.viewer)
    return principal


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from the bearer token; 401 when it is missing, wrong, expired or revoked.

    When the path names a project, the caller must hold a role on it: otherwise
    the answer is the same 404 a missing project gets, before the body is read.
    A success is remembered for ``server.auth_cache_seconds`` (see AccessCache).
    """
    state = request.scope.get("state", {})
    project = request.path_params.get("project")
    if state.get("principal") is not None and project in (None, state.get("checked_project")):
        return state["principal"]  # AuthFirst checked the token (and the path's project) before the body
    token = credentials.credentials if credentials else None
    cache: AccessCache = request.app.state.access_cache
    principal = cache.get(token, project) if token else None
    if principal is None:
        principal = await run_in_threadpool(_check_in_database, request, token, project)
        cache.put(token, project, principal)  # type: ignore[arg-type]
    request.state.principal = principal
    return principal


class RoleRequirement:
    """A route's least role on the path's project, known before the body is read.

    The control plane's AuthFirst middleware finds it on the route a request goes to and checks
    it from the path and the token alone, so a viewer's write is a 403 whatever its body (never
    a 422 about a body they may not send). As a dependency it checks again where no middleware ran.
    """

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self, request: Request, principal: Annotated[Principal, Depends(authenticated)]
    ) -> None:
        state = request.scope.get("state", {})
        project = request.path_params.get("project")
        if project is None or state.get("checked_role", Role.viewer) >= self.role:
            return
        await run_in_threadpool(_require, request, principal, project, self.role)


def _require(request: Request, principal: Principal, project: str, role: Role) -> None:
    with database(request).transaction() as session:
        require_project(session, principal, project, role)


def requires(role: Role) -> Any:
    """``dependencies=[requires(Role.developer)]``: the route's least role, checked before the body."""
    return Depends(RoleRequirement(role))


class Call:
    """What a route needs to act: the principal and a way to open its transaction."""

    def __init__(self, request: Request, principal: Principal) -> None:
        self.request = request
        self.principal = principal

    @property
    def settings(self) -> Settings:
        return self.request.app.state.settings

    @contextmanager
    def tx(self) -> Iterator[CallContext]:
        """One transaction for the whole call: it commits when the block ends, or not at all."""
        with database(self.request).transaction() as session:
            ctx = CallContext(session=session, principal=self.principal, request_id=request_id_var.get())
            yield ctx
        if ctx.identity_changed:  # committed: drop cached access checks that may now be too wide
            self.request.app.state.access_cache.clear()


async def get_call(request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> Call:
    return Call(request, principal)


CallDep = Annotated[Call, Depends(get_call)]
"""Annotate a route parameter with this to get an authenticated :class:`Call`."""
