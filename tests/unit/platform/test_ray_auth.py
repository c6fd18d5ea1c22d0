"""Which Ray auth token a node or client of the platform's cluster uses."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kosmos.platform.ray_cluster import auth_env, local_auth_token
from kosmos.platform.settings import Settings


@pytest.fixture(autouse=True)
def _no_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_the_local_instance_gets_a_private_token_generated_once(tmp_path: Path) -> None:
    env = auth_env(Settings(home=tmp_path))
    token_file = tmp_path / "ray" / "auth_token"
    assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token_file.read_text()}
    assert len(env["RAY_AUTH_TOKEN"]) == 64
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert auth_env(Settings(home=tmp_path)) == env  # a restart keeps the token its nodes use
    assert auth_env(Settings(home=tmp_path / "other"))["RAY_AUTH_TOKEN"] != env["RAY_AUTH_TOKEN"]
    assert not [p for p in token_file.parent.iterdir() if p.name != "auth_token"]  # no temp files left


def test_a_configured_token_wins_and_an_external_cluster_without_one_is_left_to_ray(tmp_path: Path) -> None:
    configured = Settings(home=tmp_path, ray={"address": "10.0.0.5:6379", "auth_token": "s3cret"})
    assert auth_env(configured) == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "s3cret"}
    assert "s3cret" not in repr(configured.ray)  # never printed with the settings
    assert auth_env(Settings(home=tmp_path, ray={"address": "10.0.0.5:6379"})) == {}
    assert not (tmp_path / "ray").exists()


def test_two_processes_racing_read_one_token(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: local_auth_token(tmp_path), range(32)))
    assert len(tokens) == 1
