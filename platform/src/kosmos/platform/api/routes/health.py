"""Liveness and readiness: the only routes that need no token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from kosmos.platform import heartbeats
from kosmos.platform.db.migrate import current_revisions, pending_revisions

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _check_database(request: Request) -> str | None:
    engine = request.app.state.database.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revisions = current_revisions(engine)
        pending = pending_revisions(engine)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    if pending:
        at = ",".join(sorted(revisions)) or "nothing"
        return f"not migrated (at {at}, {len(pending)} pending): run `kosmos db upgrade`"
    return None


def _check_redis(request: Request) -> str | None:
    url = request.app.state.settings.redis.url
    if not url:
        return None
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    return None


def _background_services(request: Request) -> dict[str, str]:
    try:
        found = heartbeats.problems(request.app.state.database)
    except Exception:  # the database check above reports it
        return {}
    return {name: str(problem) for name, problem in found.items()}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database answers and is migrated; Redis answers when configured.

    A background service in trouble (a reconciler that cannot reach Ray) is listed under
    ``degraded`` with its cause: the API still serves, so it is not a 503 that would take
    this instance out of its load balancer.
    """
    problems = {
        name: problem
        for name, check in (("database", _check_database), ("redis", _check_redis))
        if (problem := check(request))
    }
    degraded = _background_services(request) if not problems else {}
    status = "not_ready" if problems else "degraded" if degraded else "ready"
    body = {"status": status, "problems": problems, "degraded": degraded}
    return JSONResponse(body, status_code=503 if problems else 200)
