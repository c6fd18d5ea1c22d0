"""`kosmos doctor` against the real PostgreSQL, Redis and Ray: a healthy production profile
passes, and each broken service is named with what is wrong (and no password is printed)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kosmos.platform.cli.main import app
from kosmos.platform.settings import get_settings


@pytest.fixture
def doctor(monkeypatch):
    def run(**env: str) -> tuple[int, dict[str, dict[str, str]], str]:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["doctor", "-o", "json"])
        rows = {r["service"]: r for r in json.loads(result.output)} if result.output.startswith("[") else {}
        return result.exit_code, rows, result.output

    return run


def _production(postgres_url: str, redis_url: str, ray_cluster: str, tmp_path) -> dict[str, str]:
    return {
        "KOSMOS_PROFILE": "production",
        "KOSMOS_DATABASE__URL": postgres_url,
        "KOSMOS_MLFLOW__TRACKING_URI": postgres_url,  # a database-backed MLflow store
        "KOSMOS_MLFLOW__ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
        "KOSMOS_REDIS__URL": redis_url,
        "KOSMOS_RAY__ADDRESS": ray_cluster,
        "KOSMOS_FEATURES__ONLINE_STORE": "redis",
        "KOSMOS_TRAINING__STORAGE": str(tmp_path / "shared" / "ray-train"),  # a shared folder
    }


def test_a_healthy_production_profile_passes(
    doctor, postgres_url, redis_url, ray_cluster, dataplane, feature_jobs, tmp_path
) -> None:
    env = _production(postgres_url, redis_url, ray_cluster, tmp_path)
    env["KOSMOS_FEATURES__CODE_RUNNER_URL"] = feature_jobs["url"]
    env["KOSMOS_FEATURES__CODE_RUNNER_TOKEN"] = feature_jobs["token"]
    doctor(**env)  # sets the environment the settings below are read from
    with dataplane(get_settings()):
        code, rows, output = doctor(**env)
    assert code == 0, output
    assert {"metadata database", "MLflow store", "artifact store", "Redis", "Ray", "data plane"} <= set(rows)
    assert rows["metadata database"]["detail"] == "reachable, writable, migrated"
    assert rows["data plane"]["detail"] == "ingress answers"
    assert rows["feature jobs"]["detail"] == "the feature-jobs service answers"
    assert rows["training storage"]["detail"] == "folder writable"


def test_each_broken_service_is_named_with_the_problem(
    doctor, postgres_url, redis_url, ray_cluster, empty_pg_database, free_port, tmp_path
) -> None:
    env = _production(postgres_url, redis_url, ray_cluster, tmp_path)
    wrong_db = postgres_url.replace("postgres@", "postgres:s3cret@").rsplit("/", 1)[0] + "/no_such_database"
    code, rows, output = doctor(
        **{
            **env,
            "KOSMOS_DATABASE__URL": wrong_db,
            "KOSMOS_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
            "KOSMOS_RAY__ADDRESS": f"127.0.0.1:{free_port()}",
            "KOSMOS_MLFLOW__ARTIFACTS_DESTINATION": "s3://kosmos-artifacts",
            "KOSMOS_DATASETS__REMOTE": "s3://kosmos-datasets/dvc",
            "KOSMOS_DATASETS__ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
            "KOSMOS_DATAPLANE__URL": f"http://127.0.0.1:{free_port()}",
            "KOSMOS_FEATURES__CODE_RUNNER_URL": f"http://127.0.0.1:{free_port()}",
            "KOSMOS_FEATURES__CODE_RUNNER_TOKEN": "x",
        }
    )
    assert code == 1
    assert (
        "no_such_database" in rows["metadata database"]["detail"]
        and rows["metadata database"]["status"] == "FAIL"
    )
    assert rows["Redis"]["status"] == "FAIL" and "onnect" in rows["Redis"]["detail"]
    assert rows["Ray"]["status"] == "FAIL" and "cannot connect" in rows["Ray"]["detail"]
    assert rows["artifact store"]["status"] == "FAIL"
    assert rows["dataset remote (DVC)"]["status"] == "FAIL" and rows["dataset remote (DVC)"]["detail"]
    assert rows["data plane"]["status"] == "WARN" and "nothing answers" in rows["data plane"]["detail"]
    jobs = rows["feature jobs"]
    assert jobs["status"] == "FAIL" and "no feature-jobs service" in jobs["detail"]
    assert rows["MLflow store"]["status"] == "ok"  # the others are fine and say so
    assert "s3cret" not in output and "postgres:***@" in rows["metadata database"]["target"]
    _, rows, _ = doctor(**{**env, "KOSMOS_DATABASE__URL": empty_pg_database()})
    assert "migrations pending: run `kosmos db upgrade`" in rows["metadata database"]["detail"]


def test_the_production_profile_names_what_is_still_embedded(doctor, monkeypatch) -> None:
    code, _, output = doctor(KOSMOS_PROFILE="production")
    assert code == 1
    for setting in ("database.url", "mlflow.tracking_uri", "redis.url", "ray.address"):
        assert f"{setting} is not set: the production profile needs it" in output
    assert "set features.code_runner_url and code_runner_token" in output
    assert "training.storage is not set: Ray Train's checkpoints need storage every node reaches" in output


def test_the_control_plane_refuses_to_start_half_configured(postgres_url, tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS_")}
    env.update(KOSMOS_HOME=str(tmp_path), KOSMOS_PROFILE="production", KOSMOS_DATABASE__URL=postgres_url)
    started = subprocess.run(
        [sys.executable, "-m", "kosmos.platform.api"], env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 1
    assert "cannot start: profile (production): redis.url is not set" in started.stderr
    assert "metadata database" not in started.stderr  # the database itself is fine
