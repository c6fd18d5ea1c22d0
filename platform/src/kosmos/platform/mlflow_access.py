"""Which credentials a process sends to the MLflow server (it runs behind Kosmos's access rules).

The MLflow client reads ``MLFLOW_TRACKING_TOKEN`` and sends it as a bearer token. Kosmos's
own processes send the service token; a user's process (a notebook, a training script) its
user's Kosmos token, so MLflow shows it that user's projects and nothing else.
"""

from __future__ import annotations

import os

from kosmos.platform.local_secrets import local_secret
from kosmos.platform.settings import Settings

TOKEN_VARIABLE = "MLFLOW_TRACKING_TOKEN"


def service_token(settings: Settings) -> str:
    """``mlflow.service_token``, else the embedded platform's own, generated under KOSMOS_HOME."""
    if settings.mlflow.service_token is not None:
        return settings.mlflow.service_token.get_secret_value()
    return local_secret(settings.home / "mlflow" / "service_token")


def service_env(settings: Settings) -> dict[str, str]:
    """The variables a Kosmos service process needs for the MLflow server Kosmos runs or was given."""
    if settings.mlflow.tracking_uri is not None and settings.mlflow.service_token is None:
        return {}  # an MLflow Kosmos does not run: its own credentials, if any, come from the user
    return {TOKEN_VARIABLE: service_token(settings)}


def use_user_token(token: str | None) -> None:
    """Send ``token`` to MLflow from this process, unless credentials were set explicitly."""
    if token and not os.environ.get(TOKEN_VARIABLE):
        os.environ[TOKEN_VARIABLE] = token
