"""A control plane over a real database, seeded like a first start, plus helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kosmos.platform.api.app import create_app
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.client import KosmosClient
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import Settings


@dataclass
class PlatformEnv:
    """The control plane under test and the admin token a first start printed."""

    client: TestClient
    database: Database
    settings: Settings
    admin_token: str

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any):
        headers = self.auth(token or self.admin_token)
        return self.client.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        response = self.call(method, path, token, **kwargs)
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json()

    def user_with_token(
        self,
        user: str,
        *,
        project: str | None = None,
        role: str | None = None,
        team: str | None = None,
        team_role: str | None = None,
        scoped: bool = False,
    ) -> str:
        """A new user with the given memberships, and a token of theirs."""
        self.ok("POST", "/api/v1/users", json={"name": user})
        if project and role:
            self.ok("PUT", f"/api/v1/projects/{project}/members/{user}", json={"role": role})
        if team and team_role:
            self.ok("PUT", f"/api/v1/teams/{team}/members/{user}", json={"role": team_role})
        body: dict[str, Any] = {"name": f"{user}-token", "user": user}
        if scoped:
            body["project"] = project
        return self.ok("POST", "/api/v1/tokens", json=body)["token"]


@pytest.fixture
def platform_env(database_url: str, tmp_path: Path) -> Iterator[PlatformEnv]:
    settings = Settings(
        home=tmp_path / "home",
        database={"url": database_url},
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    )
    database = Database(database_url)
    result = bootstrap(settings, database)
    assert result.token is not None
    with TestClient(create_app(settings, database)) as client:
        yield PlatformEnv(client=client, database=database, settings=settings, admin_token=result.token)
    database.dispose()


MLFLOW_SERVICE_TOKEN = "test-service-token-" + "x" * 20


@pytest.fixture
def gate(postgres_url, tmp_path, free_port, live_platform, monkeypatch) -> Iterator[dict[str, Any]]:
    """A real MLflow server behind Kosmos's gate over the platform's PostgreSQL, a live control
    plane, and users: alice (developer on demo), bob (viewer on demo), carol (developer on other)."""
    from kosmos.platform.bootstrap import bootstrap
    from kosmos.platform.db.engine import Database
    from kosmos.platform.settings import Settings

    port = free_port()
    mlflow_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        home=tmp_path / "home", database={"url": postgres_url}, mlflow={"tracking_uri": mlflow_url}
    )
    database = Database(postgres_url)
    admin = bootstrap(settings, database).token
    env = {
        **os.environ,
        "KOSMOS_HOME": str(settings.home),
        "KOSMOS_DATABASE__URL": postgres_url,
        "KOSMOS_MLFLOW__SERVICE_TOKEN": MLFLOW_SERVICE_TOKEN,
        "KOSMOS_SERVER__AUTH_CACHE_SECONDS": "0",  # a revocation holds at once here
    }
    env.pop("MLFLOW_TRACKING_TOKEN", None)
    log = (tmp_path / "mlflow.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--app-name", "kosmos", "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--artifacts-destination", str(tmp_path / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port),
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
            try:
                if httpx.get(f"{mlflow_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the gated MLflow server did not start"
            time.sleep(0.3)
        with live_platform(settings, database, free_port()) as api:
            kosmos = KosmosClient(url=api, token=admin)
            kosmos.post("/projects", {"name": "other", "team": "risk"})
            tokens = {"admin": admin}
            for user, project, role in [("alice", "demo", "developer"), ("bob", "demo", "viewer"),
                                        ("carol", "other", "developer")]:  # fmt: skip
                kosmos.post("/users", {"name": user})
                kosmos.put(f"/projects/{project}/members/{user}", {"role": role})
                tokens[user] = kosmos.post("/tokens", {"name": f"{user}-t", "user": user})["token"]
            yield {
                "url": mlflow_url, "api": api, "settings": settings, "tokens": tokens, "kosmos": kosmos,
                "service_token": MLFLOW_SERVICE_TOKEN,
            }  # fmt: skip
            kosmos.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        database.dispose()
