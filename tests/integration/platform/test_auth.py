"""Authentication (401) and authorization (403/404) on the control plane."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import delete, update

from kosmos.platform.db.models import ApiToken, ProjectMember, utcnow
from kosmos.platform.identity.access import AccessCache, Principal


def test_every_api_route_needs_a_token(platform_env) -> None:
    response = platform_env.client.get("/api/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_wrong_token_is_401(platform_env) -> None:
    for token in ("kos_not-a-real-token-at-all", "garbage"):
        response = platform_env.call("GET", "/api/v1/projects", token=token)
        assert response.status_code == 401, token


def test_expired_token_is_401(platform_env) -> None:
    token = platform_env.user_with_token("erin", project="demo", role="viewer")
    with platform_env.database.transaction() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.name == "erin-token")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = platform_env.call("GET", "/api/v1/projects", token=token)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_revoked_token_is_401_at_once(platform_env) -> None:
    token = platform_env.user_with_token("rita", project="demo", role="viewer")
    assert platform_env.call("GET", "/api/v1/whoami", token=token).json()["user"] == "rita"
    platform_env.ok("DELETE", "/api/v1/tokens/rita-token", token=token)
    response = platform_env.call("GET", "/api/v1/whoami", token=token)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_tokens_are_stored_hashed_and_shown_once(platform_env) -> None:
    created = platform_env.ok("POST", "/api/v1/tokens", json={"name": "once"})
    secret = created["token"]
    with platform_env.database.transaction() as session:
        stored = session.query(ApiToken).filter_by(name="once").one()
        assert secret not in (stored.token_hash, stored.prefix)
        assert len(stored.token_hash) == 64
    listed = platform_env.ok("GET", "/api/v1/tokens")
    assert all("token" not in row for row in listed)
    assert secret not in platform_env.call("GET", "/api/v1/tokens").text


def test_cached_access_never_outlives_the_token(platform_env) -> None:
    cache = AccessCache(ttl_s=60)
    alive = Principal(
        user_id=1, user_name="x", is_admin=False, token_expires_at=utcnow() + timedelta(minutes=1)
    )
    cache.put("kos_a", "demo", alive)
    assert cache.get("kos_a", "demo") == alive
    assert cache.get("kos_a", "other") is None  # per project
    cache.put("kos_b", "demo", replace(alive, token_expires_at=utcnow() - timedelta(seconds=1)))
    assert cache.get("kos_b", "demo") is None


def test_membership_change_applies_at_once_despite_the_cache(platform_env) -> None:
    token = platform_env.user_with_token("mia", project="demo", role="viewer")
    assert platform_env.call("GET", "/api/v1/projects/demo", token=token).status_code == 200
    platform_env.ok("PUT", "/api/v1/projects/demo/members/mia", json={"role": "viewer"})
    with platform_env.database.transaction() as session:
        session.execute(delete(ProjectMember))
    # a direct database change waits for the cache; a change through the API does not
    platform_env.ok("PUT", "/api/v1/projects/demo/members/admin", json={"role": "admin"})
    assert platform_env.call("GET", "/api/v1/projects/demo", token=token).status_code == 404


def test_too_small_a_role_is_403(platform_env) -> None:
    viewer = platform_env.user_with_token("vic", project="demo", role="viewer")
    response = platform_env.call(
        "PUT", "/api/v1/projects/demo/members/vic", token=viewer, json={"role": "admin"}
    )
    assert response.status_code == 403
    assert "admin" in response.json()["error"]["message"]
    members = platform_env.ok("GET", "/api/v1/projects/demo/members")
    assert {"user": "vic", "role": "viewer"} in members


def test_team_role_reaches_the_teams_projects(platform_env) -> None:
    token = platform_env.user_with_token("tom", team="risk", team_role="developer")
    projects = platform_env.ok("GET", "/api/v1/projects", token=token)
    assert [(p["name"], p["role"]) for p in projects] == [("demo", "developer")]


def test_team_maintainer_creates_projects_but_member_cannot(platform_env) -> None:
    lead = platform_env.user_with_token("lea", team="risk", team_role="maintainer")
    member = platform_env.user_with_token("max", team="risk", team_role="viewer")
    body = {"name": "chargebacks", "team": "risk"}
    assert platform_env.call("POST", "/api/v1/projects", token=member, json=body).status_code == 403
    created = platform_env.ok("POST", "/api/v1/projects", token=lead, json=body)
    assert created["role"] == "maintainer"


def test_scoped_token_cannot_escalate(platform_env) -> None:
    platform_env.user_with_token("sam", project="demo", role="maintainer")
    capped = platform_env.ok(
        "POST", "/api/v1/tokens", json={"name": "capped", "user": "sam", "project": "demo", "role": "viewer"}
    )["token"]
    # the cap applies even though sam is a maintainer
    response = platform_env.call(
        "PUT", "/api/v1/projects/demo/members/sam", token=capped, json={"role": "admin"}
    )
    assert response.status_code == 403
    # and a capped token cannot mint an uncapped one
    response = platform_env.call(
        "POST", "/api/v1/tokens", token=capped, json={"name": "wider", "project": "demo"}
    )
    assert response.status_code == 403
    response = platform_env.call(
        "POST", "/api/v1/tokens", token=capped, json={"name": "wider", "project": "demo", "role": "viewer"}
    )
    assert response.status_code == 201


def test_non_admin_cannot_create_users_or_teams(platform_env) -> None:
    token = platform_env.user_with_token("nora", project="demo", role="admin")
    assert (
        platform_env.call(
            "POST", "/api/v1/users", token=token, json={"name": "mallory", "is_admin": True}
        ).status_code
        == 403
    )
    assert platform_env.call("POST", "/api/v1/teams", token=token, json={"name": "shadow"}).status_code == 403
    assert (
        platform_env.call(
            "POST", "/api/v1/tokens", token=token, json={"name": "x", "user": "admin"}
        ).status_code
        == 403
    )


# Writes a viewer may make: reads that take a body, and a viewer's own feedback on an answer.
VIEWER_WRITES = {
    ("POST", "/api/v1/projects/{project}/features/online"),
    ("POST", "/api/v1/projects/{project}/deployments/{name}/predict"),
    ("POST", "/api/v1/projects/{project}/deployments/{name}/predict/batch"),
    ("POST", "/api/v1/projects/{project}/decisions/{request_id}/replay"),
    ("POST", "/api/v1/projects/{project}/cache/entries/{entry}/flag"),
    ("POST", "/api/v1/projects/{project}/llm/requests/{request_id}/outcome"),
    ("POST", "/api/v1/projects/{project}/prompts/{name}/render"),
    ("POST", "/api/v1/projects/{project}/assistant"),
    ("POST", "/api/v1/projects/{project}/openai/v1/chat/completions"),
    ("POST", "/api/v1/projects/{project}/openai/v1/completions"),
    ("POST", "/api/v1/projects/{project}/openai/v1/embeddings"),
}


def test_a_viewer_capped_token_gets_403_before_any_body_on_every_write_route(platform_env) -> None:
    """A viewer-capped token of a maintainer: every write route of the project answers 403 to a
    body that is not even JSON, so the refusal never depends on the body (it is never read)."""
    from kosmos.platform.api.app import api_routes

    platform_env.user_with_token("mia", project="demo", role="maintainer")
    capped = platform_env.ok(
        "POST",
        "/api/v1/tokens",
        json={"name": "read-only", "user": "mia", "project": "demo", "role": "viewer"},
    )["token"]
    writes = sorted(
        (method, route.path)
        for route in api_routes(platform_env.client.app)
        if route.path.startswith("/api/v1/projects/{project}/")
        for method in route.methods - {"GET", "HEAD"}
    )
    assert len(writes) > 30, writes
    answers = {}
    for method, path in writes:
        url = path.replace("{project}", "demo")
        url = url.replace("{version}", "1").replace("{entry}", "1")
        for name in ("name", "table", "namespace", "alias", "request_id", "user"):
            url = url.replace("{" + name + "}", "x1")
        response = platform_env.call(method, url, token=capped, content=b"\x00 not json")
        answers[(method, path)] = response.status_code
    refused = {k for k, code in answers.items() if code == 403}
    assert refused == set(answers) - VIEWER_WRITES, {k: v for k, v in answers.items() if k not in refused}
    assert all(answers[k] != 403 for k in VIEWER_WRITES if k in answers)
