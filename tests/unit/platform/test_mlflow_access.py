"""Which MLflow credentials Kosmos's own processes send, and where the gate's rules point."""

from __future__ import annotations

import stat
from pathlib import Path

from kosmos.platform.mlflow_access import service_env
from kosmos.platform.mlflow_gate.rules import normalize, project_of_experiment_name, project_of_model_name
from kosmos.platform.settings import Settings


def test_the_embedded_server_gets_a_private_service_token_generated_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = service_env(settings)["MLFLOW_TRACKING_TOKEN"]
    assert len(first) == 64 and service_env(settings)["MLFLOW_TRACKING_TOKEN"] == first
    path = tmp_path / "mlflow" / "service_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_configured_token_wins_and_a_foreign_mlflow_gets_none(tmp_path: Path) -> None:
    configured = Settings(home=tmp_path, mlflow={"tracking_uri": "http://m:5000", "service_token": "s3cret"})
    assert service_env(configured) == {"MLFLOW_TRACKING_TOKEN": "s3cret"}
    assert service_env(Settings(home=tmp_path, mlflow={"tracking_uri": "http://m:5000"})) == {}
    assert not (tmp_path / "mlflow" / "service_token").exists()


def test_names_map_to_projects_only_with_their_prefix() -> None:
    assert project_of_experiment_name("demo/churn") == "demo"
    assert project_of_experiment_name("Default") is None and project_of_experiment_name("demo/") is None
    assert project_of_model_name("demo.scorer") == "demo" and project_of_model_name("scorer") is None
    assert normalize("/ajax-api/2.0/mlflow/runs/get") == "/api/2.0/mlflow/runs/get"
