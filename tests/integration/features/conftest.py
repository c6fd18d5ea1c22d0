"""A fraud feature repository on each backend pair: embedded and production."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
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


def _backend_settings(backend: str, home: Path, redis_url: str, registry_url: Callable[[], str]) -> Settings:
    """embedded: SQLite online store, file registry. production: Redis and Feast's SQL registry."""
    if backend == "embedded":
        return Settings(home=home)
    return Settings(
        home=home,
        redis={"url": redis_url},
        features={"online_store": "redis", "registry": "sql", "registry_url": registry_url()},
    )


def _materialized(settings: Settings, fraud_data: FraudData) -> FeatureRepo:
    """A materialized fraud repository under a project name of its own."""
    repo = FeatureRepo(settings, f"fraud-{uuid.uuid4().hex[:10]}")
    repo.init(template="fraud")
    write(fraud_data, repo.tables_dir)
    repo.apply()
    run_pipelines(repo)
    return repo


@pytest.fixture(params=["embedded", "production"])
def feature_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "embedded":
        return _backend_settings("embedded", tmp_path / "home", "", str)
    redis_url = request.getfixturevalue("redis_url")
    return _backend_settings(
        "production", tmp_path / "home", redis_url, request.getfixturevalue("empty_pg_database")
    )


@pytest.fixture
def fraud_repo(feature_settings: Settings, fraud_data: FraudData) -> Iterator[FeatureRepo]:
    """A materialized fraud repository of this test's own, for tests that change it."""
    repo = _materialized(feature_settings, fraud_data)
    yield repo
    repo.store().teardown()  # drops the project's online tables or Redis keys


@pytest.fixture(scope="session")
def _shared_repos(
    tmp_path_factory: pytest.TempPathFactory, fraud_data: FraudData, session_pg_database: Callable[[], str]
) -> Iterator[Callable[[str, str], FeatureRepo]]:
    repos: dict[str, FeatureRepo] = {}

    def get(backend: str, redis_url: str) -> FeatureRepo:
        if backend not in repos:
            home = tmp_path_factory.mktemp(f"shared-{backend}") / "home"
            repos[backend] = _materialized(
                _backend_settings(backend, home, redis_url, session_pg_database), fraud_data
            )
        return repos[backend]

    yield get
    for repo in repos.values():
        repo.store().teardown()


@pytest.fixture(params=["embedded", "production"])
def shared_fraud_repo(request: pytest.FixtureRequest, _shared_repos) -> FeatureRepo:
    """One materialized fraud repository per backend for the whole run, for tests that only read
    it (about 13 s saved per test): a test that writes to it takes ``fraud_repo`` instead."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "production" else ""
    return _shared_repos(request.param, redis_url)
