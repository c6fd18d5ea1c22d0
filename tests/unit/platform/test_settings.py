"""Settings: defaults under KOSMOS_HOME, kosmos.yaml, KOSMOS_* variables, clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kosmos.platform.settings import Settings


def test_nothing_configured_means_everything_under_home(isolated_home) -> None:
    s = Settings()
    assert s.home == isolated_home
    assert s.profile == "embedded"
    assert s.database_url == f"sqlite:///{isolated_home / 'kosmos.db'}"
    assert s.mlflow_backend_store_uri.startswith(f"sqlite:///{isolated_home}")
    assert s.api_url == "http://127.0.0.1:8080"
    assert s.ray.gcs_port != 6379


def test_yaml_then_environment(isolated_home, monkeypatch) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / "kosmos.yaml").write_text(
        "server:\n  port: 9090\ndatabase:\n  url: postgresql+psycopg://db/kosmos\n"
    )
    assert Settings().server.port == 9090
    assert Settings().database_url == "postgresql+psycopg://db/kosmos"
    monkeypatch.setenv("KOSMOS_SERVER__PORT", "9191")
    assert Settings().server.port == 9191


def test_unknown_key_in_yaml_is_an_error(isolated_home) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / "kosmos.yaml").write_text("server:\n  prot: 9090\n")
    with pytest.raises(ValidationError, match="prot"):
        Settings()


def test_malformed_yaml_names_the_file(isolated_home) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / "kosmos.yaml").write_text("server: [unclosed\n")
    with pytest.raises(ValueError, match=r"kosmos\.yaml"):
        Settings()


def test_ray_may_not_take_redis_port() -> None:
    with pytest.raises(ValidationError, match="Redis"):
        Settings(ray={"gcs_port": 6379})
