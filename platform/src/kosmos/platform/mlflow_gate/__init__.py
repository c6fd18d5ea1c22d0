"""MLflow behind Kosmos's identity: ``mlflow server --app-name kosmos``.

The embedded MLflow server (and the production profile's) runs MLflow's own app behind
:class:`MlflowGate` (MLflow's ``mlflow.app`` plugin point, the one its basic-auth app uses).
Nobody reaches another project's runs, models, prompts, traces or artifacts through it.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from kosmos.platform.mlflow_gate.gate import MlflowGate

__all__ = ["MlflowGate", "create_app"]


def create_app() -> ASGIApp:
    """The MLflow server's ASGI app behind the gate (uvicorn calls this in each worker)."""
    from mlflow.server.fastapi_app import app as mlflow_app

    from kosmos.platform.db.engine import Database
    from kosmos.platform.mlflow_access import service_token
    from kosmos.platform.settings import get_settings

    settings = get_settings()
    return MlflowGate(
        mlflow_app,
        database=Database(settings.database_url),
        service_token=service_token(settings),
        auth_cache_seconds=settings.server.auth_cache_seconds,
        max_body_bytes=settings.server.max_body_bytes,
    )
