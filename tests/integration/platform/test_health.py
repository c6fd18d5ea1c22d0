"""/healthz and /readyz, the only routes without a token."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kosmos.platform.api.app import create_app
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import Settings


def test_healthz_needs_no_token(platform_env) -> None:
    assert platform_env.client.get("/healthz").json() == {"status": "ok"}


def test_readyz_checks_the_database_and_redis(database_url: str, redis_url: str, tmp_path) -> None:
    settings = Settings(home=tmp_path, database={"url": database_url}, redis={"url": redis_url})
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "problems": {}, "degraded": {}}


def test_readyz_names_what_is_wrong(tmp_path) -> None:
    unmigrated = f"sqlite:///{tmp_path / 'empty.db'}"
    settings = Settings(home=tmp_path, database={"url": unmigrated}, redis={"url": "redis://127.0.0.1:1/0"})
    database = Database(unmigrated)
    with TestClient(create_app(settings, database)) as client:
        response = client.get("/readyz")
    database.dispose()
    assert response.status_code == 503
    problems = response.json()["problems"]
    assert "kosmos db upgrade" in problems["database"]
    assert problems["redis"].startswith("unreachable")


def test_openapi_documents_the_api(platform_env) -> None:
    spec = platform_env.client.get("/openapi.json").json()
    assert "/api/v1/projects" in spec["paths"]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
