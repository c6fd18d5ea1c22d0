"""A fraud feature repository on each backend pair: embedded and production."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kosmos.features.demo import FraudData, generate, write
from kosmos.features.demo.fraud_data import default_end
from kosmos.features.repo import FeatureRepo
from kosmos.features.runs import run_pipelines
from kosmos.platform.settings import Settings

FRAUD_ROWS = 6_000


@pytest.fixture(scope="session")
def fraud_data() -> FraudData:
    return generate(rows=FRAUD_ROWS, seed=11, end=default_end())


@pytest.fixture(params=["embedded", "production"])
def feature_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """embedded: SQLite online store, file registry. production: Redis and Feast's SQL registry."""
    if request.param == "embedded":
        return Settings(home=tmp_path / "home")
    redis_url = request.getfixturevalue("redis_url")
    registry_url = request.getfixturevalue("empty_pg_database")()
    return Settings(
        home=tmp_path / "home",
        redis={"url": redis_url},
        features={"online_store": "redis", "registry": "sql", "registry_url": registry_url},
    )


@pytest.fixture
def fraud_repo(feature_settings: Settings, fraud_data: FraudData) -> Iterator[FeatureRepo]:
    """A materialized fraud repository under a project name unique to this test."""
    project = f"fraud-{uuid.uuid4().hex[:10]}"
    repo = FeatureRepo(feature_settings, project)
    repo.init(template="fraud")
    write(fraud_data, repo.tables_dir)
    repo.apply()
    run_pipelines(repo)
    yield repo
    repo.store().teardown()  # drops the project's online tables or Redis keys
