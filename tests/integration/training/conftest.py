"""A live control plane with the fraud features materialized, and MLflow on SQLite or PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kosmos.features.demo import generate, write
from kosmos.features.demo.fraud_data import default_end
from kosmos.features.repo import feature_repo
from kosmos.platform import KosmosClient
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import Settings


@pytest.fixture(scope="session")
def training_data():
    return generate(rows=12_000, seed=5, end=default_end())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mlflow_uri(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, session_pg_database
) -> str:
    """MLflow's tracking and registry store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return session_pg_database()


@pytest.fixture(scope="module")
def _training_platform(
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    free_port,
    live_platform,
    training_data,
    mlflow_uri: str,
) -> Iterator[dict]:
    """One platform per module and MLflow store, shared by its tests (their datasets, runs and
    models have names of their own): bootstrapping it and materializing the fraud features took
    about 20 s per test."""
    home = tmp_path_factory.mktemp("training-home")
    database_file = home / "kosmos.db"
    shutil.copy(sqlite_template, database_file)
    database_url = f"sqlite:///{database_file}"
    settings = Settings(home=home, database={"url": database_url}, mlflow={"tracking_uri": mlflow_uri})
    database = Database(database_url)
    admin = bootstrap(settings, database).token
    with live_platform(settings, database, free_port()) as url:
        settings = settings.model_copy(update={"client": settings.client.model_copy(update={"url": url})})
        with KosmosClient(url=url, token=admin) as c:
            c.post("/projects/demo/features/init", {"template": "fraud"})
            write(training_data, feature_repo(settings, "demo").tables_dir)
            c.post("/projects/demo/features/pipelines/run", {"materialize": False})
            c.post("/projects", {"name": "other", "team": "risk"})
            for user, project, role in (
                ("vic", "demo", "viewer"),
                ("dev", "demo", "developer"),
                ("otto", "other", "admin"),
            ):
                c.post("/users", {"name": user})
                c.put(f"/projects/{project}/members/{user}", {"role": role})
            tokens = {u: c.post("/tokens", {"name": u, "user": u})["token"] for u in ("vic", "dev", "otto")}
        yield {"url": url, "admin": admin, "settings": settings, "mlflow_uri": mlflow_uri, **tokens}
    database.dispose()


@pytest.fixture
def training_server(_training_platform: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The module's platform, with this test's environment pointing at it (``isolated_home``
    clears every KOSMOS_ variable before each test)."""
    monkeypatch.setenv("KOSMOS_CLIENT__URL", _training_platform["url"])
    monkeypatch.setenv("KOSMOS_MLFLOW__TRACKING_URI", _training_platform["mlflow_uri"])
    monkeypatch.chdir(
        _training_platform["settings"].home
    )  # MLflow keeps a SQLite store's artifacts in ./mlruns
    return _training_platform
