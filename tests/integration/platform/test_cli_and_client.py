"""The `kosmos` CLI and the SDK client against a real control plane over HTTP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kosmos.platform import KosmosClient, NotFound, Unauthenticated
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.cli.main import app
from kosmos.platform.db.engine import Database
from kosmos.platform.errors import ConnectionFailed
from kosmos.platform.settings import Settings, get_settings

runner = CliRunner()


@pytest.fixture
def server(
    postgres_url: str, isolated_home: Path, monkeypatch, free_port, live_platform
) -> Iterator[tuple[str, str]]:
    """A live control plane on PostgreSQL; yields (url, admin token)."""
    settings = Settings(home=isolated_home / "server", database={"url": postgres_url})
    database = Database(postgres_url)
    token = bootstrap(settings, database).token
    port = free_port()
    with live_platform(settings, database, port) as url:
        monkeypatch.setenv("KOSMOS_CLIENT__URL", url)
        yield url, token
    database.dispose()


def kosmos(*args: str, code: int = 0) -> str:
    get_settings.cache_clear()  # each real invocation is a new process that reads the env
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (args, result.exit_code, result.output)
    return result.output


def test_login_saves_a_private_token_and_commands_use_it(server, isolated_home: Path) -> None:
    url, token = server
    out = kosmos("login", "--token", token, "--url", url)
    assert "logged in" in out and "admin" in out and token not in out
    saved = isolated_home / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    projects = json.loads(kosmos("projects", "list", "--output", "json"))
    assert [p["name"] for p in projects] == ["demo"]
    assert "demo" in kosmos("projects", "list")


def test_the_identity_flow(server, monkeypatch) -> None:
    _url, token = server
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", token)
    kosmos("teams", "create", "compliance")
    kosmos("projects", "create", "aml", "--team", "compliance")
    kosmos("users", "create", "carol")
    kosmos("projects", "add-member", "aml", "carol", "--role", "developer")
    members = json.loads(kosmos("projects", "members", "aml", "-o", "json"))
    assert members == [{"user": "carol", "role": "developer"}]
    created = json.loads(
        kosmos("tokens", "create", "carol-ci", "--user", "carol", "--project", "aml", "-o", "json")
    )
    carol = created["token"]
    assert carol.startswith("kos_")
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", carol)
    assert json.loads(kosmos("whoami", "-o", "json"))["token_project"] == "aml"
    kosmos("projects", "show", "demo", code=5)
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", token)
    kosmos("tokens", "revoke", "carol-ci", "--user", "carol")
    events = json.loads(kosmos("audit", "list", "--project", "aml", "-o", "json"))
    assert {e["action"] for e in events} >= {"project.create", "project.member.set"}
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", carol)
    kosmos("whoami", code=3)


def test_exit_codes_scripts_rely_on(server, monkeypatch) -> None:
    _url, token = server
    kosmos("projects", "list", code=3)  # no token anywhere
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", token)
    kosmos("projects", "show", "nope", code=5)
    kosmos("teams", "create", "risk", code=6)
    out = kosmos("teams", "create", "Bad/Name", code=2)
    assert "path separators" in out


def test_unreachable_control_plane_is_a_clear_error(monkeypatch, free_port) -> None:
    monkeypatch.setenv("KOSMOS_CLIENT__URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("KOSMOS_CLIENT__RETRIES", "1")
    out = subprocess.run(
        [sys.executable, "-m", "kosmos.platform.cli.main", "projects", "list"], capture_output=True, text=True
    )
    assert out.returncode == 7
    assert "cannot reach the Kosmos control plane" in out.stderr
    assert "Traceback" not in out.stderr


def test_client_retries_until_the_server_is_up(
    postgres_url: str, isolated_home: Path, free_port, live_platform
) -> None:
    settings = Settings(home=isolated_home, database={"url": postgres_url})
    database = Database(postgres_url)
    token = bootstrap(settings, database).token
    port = free_port()
    with live_platform(settings, database, port, delay_s=0.8) as url:
        started = time.monotonic()
        with KosmosClient(url=url, token=token, settings=settings) as client:
            assert client.get("/whoami")["user"] == "admin"
        assert time.monotonic() - started >= 0.5  # it really had to wait
    database.dispose()


def test_client_raises_the_servers_error(server, free_port) -> None:
    url, token = server
    with KosmosClient(url=url, token=token) as client:
        with pytest.raises(NotFound, match="'nope' not found") as info:
            client.get("/projects/nope")
        assert info.value.request_id and info.value.status_code == 404
    with KosmosClient(url=url, token="kos_wrong-token") as client, pytest.raises(Unauthenticated):
        client.get("/projects")
    with (
        KosmosClient(
            url=f"http://127.0.0.1:{free_port()}", token=token, settings=Settings(client={"retries": 0})
        ) as client,
        pytest.raises(ConnectionFailed),
    ):
        client.get("/projects")


def test_onboarding_example_runs_and_is_idempotent(server, monkeypatch) -> None:
    url, token = server
    env = {**os.environ, "KOSMOS_CLIENT__URL": url, "KOSMOS_CLIENT__TOKEN": token}
    script = Path(__file__).resolve().parents[3] / "examples" / "identity" / "onboard_team.py"
    args = [sys.executable, str(script), "--team", "compliance", "--project", "aml", "--user", "carol"]
    for _ in range(2):
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "carol (developer)" in out.stdout
    carol = out.stdout.strip().splitlines()[-1].strip()
    with KosmosClient(url=url, token=carol) as client:
        assert [p["name"] for p in client.get("/projects")] == ["aml"]
