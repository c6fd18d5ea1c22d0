"""The control plane: one FastAPI app under ``/api/v1`` with the packages' routers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match
from starlette.types import Scope

from kosmos.platform.api.auth_first import AuthFirst
from kosmos.platform.api.deps import CallDep, RoleRequirement, authenticated
from kosmos.platform.api.errors import install_error_handlers
from kosmos.platform.api.middleware import RequestContextMiddleware
from kosmos.platform.api.routes import audit, cluster, health, identity
from kosmos.platform.api.schemas import PluginOut
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Role
from kosmos.platform.identity.access import AccessCache
from kosmos.platform.identity.names import name_problem
from kosmos.platform.plugins import installed_plugins
from kosmos.platform.settings import Settings, get_settings

API_PREFIX = "/api/v1"
MAX_BODY_KEY = "x-kosmos-max-body-bytes"
"""A route that takes more than ``server.max_body_bytes`` (an upload) says so in its
``openapi_extra``: ``{MAX_BODY_KEY: bytes}``."""
_PROJECTS = f"{API_PREFIX}/projects/"


def _guard(path: str) -> tuple[bool, str | None]:
    """Everything under /api/v1 needs a token; /api/v1/projects/{project}/... names a project."""
    if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
        return False, None
    if path.startswith(_PROJECTS):
        project = path[len(_PROJECTS) :].split("/", 1)[0]
        if project and not name_problem(project):  # a bad name is the route's 422, naming the field
            return True, project
    return True, None


def api_routes(app: FastAPI) -> list[Any]:
    """Every FastAPI route of ``app`` with its full path (FastAPI 0.16x keeps included routers
    as lazy branches: ``app.routes`` lists the branches, not their routes)."""
    return [r for r in iter_route_contexts(app.routes) if isinstance(r.original_route, APIRoute)]


def _route_limits(app: FastAPI) -> Callable[[Scope], int | None]:
    """The body limit of the route a request goes to, for the routes that declare one."""
    declared = [
        (route, route.openapi_extra[MAX_BODY_KEY])
        for route in api_routes(app)
        if MAX_BODY_KEY in (route.openapi_extra or {})
    ]

    def limit_of(scope: Scope) -> int | None:
        for route, limit in declared:
            if route.matches(scope)[0] is Match.FULL:
                return int(limit)
        return None

    return limit_of


def _route_roles(app: FastAPI) -> Callable[[Scope], Role | None]:
    """The least role on the path's project of the route a request goes to (``requires``)."""
    declared = []
    for route in api_routes(app):
        dependencies = route.original_route.dependant.dependencies
        roles = [d.call.role for d in dependencies if isinstance(d.call, RoleRequirement)]
        if roles:
            declared.append((route, max(roles)))

    def role_of(scope: Scope) -> Role | None:
        for route, role in declared:
            if route.matches(scope)[0] is Match.FULL:
                return role
        return None

    return role_of


def _plugins_router() -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/plugins", response_model=list[PluginOut])
    def list_plugins(call: CallDep) -> list[PluginOut]:
        """The Kosmos packages installed in this control plane."""
        return [
            PluginOut(
                name=p.plugin.name,
                package=p.package,
                version=p.version,
                has_api=p.plugin.router is not None,
                has_cli=p.plugin.cli is not None,
            )
            for p in installed_plugins()
        ]

    @router.get("/dataplane")
    def dataplane(call: CallDep) -> dict[str, str]:
        """Where the data plane serves predictions, online features and the OpenAI API."""
        return {"url": call.settings.dataplane_url}

    return router


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the control-plane app; every route under /api/v1 requires a token."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Kosmos control plane",
        version="0.1.0",
        description="Projects, identity, audit, and the routes of every Kosmos package.",
    )
    app.state.settings = settings
    app.state.database = database or Database(settings.database_url, echo=settings.database.echo)
    app.state.access_cache = AccessCache(settings.server.auth_cache_seconds)

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticated)])
    api.include_router(identity.router)
    api.include_router(audit.router)
    api.include_router(cluster.router)
    api.include_router(_plugins_router())
    for installed in installed_plugins():
        if installed.plugin.router is not None:
            api.include_router(installed.plugin.router())
    app.include_router(health.router)
    app.include_router(api)
    install_error_handlers(app)

    app.add_middleware(
        AuthFirst,
        database=app.state.database,
        cache=app.state.access_cache,
        max_body_bytes=settings.server.max_body_bytes,
        guard=_guard,
        limit_of=_route_limits(app),
        role_of=_route_roles(app),
    )
    app.add_middleware(RequestContextMiddleware)

    return app
