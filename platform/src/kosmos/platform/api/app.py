"""The control plane: one FastAPI app under ``/api/v1`` with the packages' routers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from kosmos.platform.api.deps import CallDep, authenticated
from kosmos.platform.api.errors import install_error_handlers, internal_error_response
from kosmos.platform.api.routes import audit, health, identity
from kosmos.platform.api.schemas import PluginOut
from kosmos.platform.db.engine import Database
from kosmos.platform.logs import request_id_var
from kosmos.platform.plugins import installed_plugins
from kosmos.platform.settings import Settings, get_settings

API_PREFIX = "/api/v1"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
access_log = logging.getLogger("kosmos.access")


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

    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticated)])
    api.include_router(identity.router)
    api.include_router(audit.router)
    api.include_router(_plugins_router())
    for installed in installed_plugins():
        if installed.plugin.router is not None:
            api.include_router(installed.plugin.router())
    app.include_router(health.router)
    app.include_router(api)
    install_error_handlers(app)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        reset = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            try:
                response = await call_next(request)
            except Exception:
                access_log.exception("unhandled error on %s %s", request.method, request.url.path)
                response = internal_error_response()
            response.headers["X-Request-ID"] = request_id
            access_log.info(
                "%s %s %s %.1fms",
                request.method,
                request.url.path,
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
            return response
        finally:
            request_id_var.reset(reset)

    return app
