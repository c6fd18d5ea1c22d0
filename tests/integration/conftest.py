"""A control plane over a real database, seeded like a first start, plus helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kosmos.platform.api.app import create_app
from kosmos.platform.bootstrap import bootstrap
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
