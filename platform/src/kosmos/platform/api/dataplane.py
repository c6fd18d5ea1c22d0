"""The data plane's ASGI app: the routes plugins declare for Ray Serve's ingress, under ``/{project}``.

    client --> Serve HTTP proxy --> [AuthFirst] --> /{project}/...  (plugin data-plane routes)

``AuthFirst`` (``auth_first``) decides before a byte of the body is read: no or a bad token
is a 401, a project the token holds no role on is the same 404 a missing project gets, and a
body over ``dataplane.max_body_bytes`` is a 413. A success is remembered for
``dataplane.auth_cache_seconds`` (at most 5 s), so the metadata database is read once per
token and project in that window, never per request.

Which plugin serves what is the plugins' business (``Plugin.dataplane_router``); the
platform names none of them.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, FastAPI

from kosmos.platform.api.auth_first import AuthFirst
from kosmos.platform.api.errors import install_error_handlers
from kosmos.platform.api.middleware import RequestContextMiddleware
from kosmos.platform.db.engine import Database
from kosmos.platform.identity.access import AccessCache
from kosmos.platform.plugins import installed_plugins
from kosmos.platform.settings import Settings

OPEN_PATHS = {"/healthz"}  # not /-/healthz: Ray Serve's proxy answers that one itself
HEALTHY = {"status": "ok", "plane": "data"}
"""What the ingress's /healthz answers (plus the ``settings`` it runs with, see ``health``)."""


def health(settings: Settings) -> dict[str, str]:
    """/healthz's answer: names the data plane and the settings it runs with (a short hash), so
    a caller can tell a replica of a new settings version from one of the old that drains."""
    return {**HEALTHY, "settings": hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:12]}


def _guard(path: str) -> tuple[bool, str | None]:
    """Every path but /healthz names a project first (``/{project}/...``)."""
    if path in OPEN_PATHS:
        return False, None
    return True, path.lstrip("/").split("/", 1)[0]


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
        guard=_guard,
    )
    app.add_middleware(RequestContextMiddleware, echo=False)  # Serve's proxy sets X-Request-Id
    return app
