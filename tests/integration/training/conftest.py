"""A live control plane with the fraud features materialized, and MLflow on SQLite or PostgreSQL."""

from __future__ import annotations

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


@pytest.fixture(params=["sqlite", "postgres"])
def mlflow_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """MLflow's tracking and registry store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow.db'}"
    return request.getfixturevalue("empty_pg_database")()


@pytest.fixture
def training_server(
    sqlite_url: str,
    isolated_home: Path,
    free_port,
    live_platform,
    training_data,
    mlflow_uri: str,
    monkeypatch,
) -> Iterator[dict]:
    settings = Settings(home=isolated_home, database={"url": sqlite_url}, mlflow={"tracking_uri": mlflow_uri})
    database = Database(sqlite_url)
    admin = bootstrap(settings, database).token
    with live_platform(settings, database, free_port()) as url:
        settings = settings.model_copy(update={"client": settings.client.model_copy(update={"url": url})})
        monkeypatch.setenv("KOSMOS_CLIENT__URL", url)
        monkeypatch.setenv("KOSMOS_MLFLOW__TRACKING_URI", mlflow_uri)
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
        yield {"url": url, "admin": admin, "settings": settings, **tokens}
    database.dispose()
