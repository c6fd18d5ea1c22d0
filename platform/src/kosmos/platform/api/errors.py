"""One JSON error shape for every failure of the control plane.

{"error": {"code": "validation_error", "message": "name: must not be empty",
           "details": [{"field": "name", "reason": "must not be empty"}],
           "request_id": "9f2c..."}}
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kosmos.platform import audit
from kosmos.platform.errors import Forbidden, KosmosError, Unauthenticated
from kosmos.platform.logs import request_id_var

log = logging.getLogger("kosmos.api")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details or [],
            "request_id": request_id_var.get(),
        }
    }


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        reason = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            reason = f"malformed JSON: {err.get('ctx', {}).get('error', 'cannot parse')}"
        elif err.get("type") == "extra_forbidden":
            reason = "unknown field"
        reason = reason.removeprefix("Value error, ")
        details.append({"field": _field_of(tuple(err.get("loc", ()))), "reason": reason})
    return details


def _audit_refusal(request: Request, exc: KosmosError) -> None:
    """A known user's refused call goes to the audit log in its own transaction (the work rolled
    back). An anonymous one is only counted: it must not cost a database write."""
    database = getattr(request.app.state, "database", None)
    principal = getattr(request.state, "principal", None)
    if principal is None:
        from kosmos.platform.api.auth_first import refusals

        refusals[exc.code] += 1
        return
    if database is None:
        return
    try:
        with database.transaction() as session:
            audit.record(
                session,
                actor=principal.user_name,
                action=audit.route_action(request.method, request.url.path),
                object_type="route",
                object_name=request.url.path[:256],
                project=(request.path_params.get("project") or "")[:128] or None,
                outcome="denied",
                request_id=request_id_var.get(),
                details={"reason": exc.message},
            )
    except Exception:  # the refusal itself must still reach the caller
        log.exception("could not record a refused call in the audit log")


def internal_error_response() -> JSONResponse:
    """A 500 that says nothing about internals; the log has the traceback."""
    return JSONResponse(
        error_body("internal_error", "internal error; quote the request id when reporting it"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KosmosError)
    async def kosmos_error(request: Request, exc: KosmosError) -> JSONResponse:
        if isinstance(exc, (Unauthenticated, Forbidden)):
            _audit_refusal(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        message = "; ".join(f"{d['field']}: {d['reason']}" for d in details)
        return JSONResponse(error_body("validation_error", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)
