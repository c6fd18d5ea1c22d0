"""The audit log: complete, append-only, and queryable by project, actor, object and time."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError

from kosmos.platform.db.models import AuditEvent


def test_actions_are_recorded_with_actor_and_outcome(platform_env) -> None:
    platform_env.ok("POST", "/api/v1/users", json={"name": "bob"})
    platform_env.ok("PUT", "/api/v1/projects/demo/members/bob", json={"role": "developer"})
    events = platform_env.ok("GET", "/api/v1/audit", params={"project": "demo"})
    latest = events[0]
    assert latest["action"] == "project.member.set"
    assert latest["actor"] == "admin"
    assert latest["outcome"] == "success"
    assert latest["details"] == {"user": "bob", "role": "developer"}
    assert latest["request_id"]


def test_a_known_users_refusals_are_recorded_an_anonymous_one_is_only_counted(platform_env) -> None:
    from kosmos.platform.api.auth_first import refusals

    viewer = platform_env.user_with_token("vera", project="demo", role="viewer")
    response = platform_env.call(
        "PUT", "/api/v1/projects/demo/members/vera", token=viewer, json={"role": "admin"}
    )
    assert response.status_code == 403
    platform_env.ok("POST", "/api/v1/projects", json={"name": "vault", "team": "risk"})
    elsewhere = platform_env.call("GET", "/api/v1/projects/vault/members", token=viewer)
    assert elsewhere.status_code == 404  # the same answer as a missing project ...
    denied = platform_env.ok("GET", "/api/v1/audit", params={"project": "demo", "actor": "vera"})
    assert [e["outcome"] for e in denied] == ["denied"]
    assert denied[0]["request_id"] == response.headers["X-Request-ID"]
    cross = platform_env.ok("GET", "/api/v1/audit", params={"project": "vault", "actor": "vera"})
    assert [(e["outcome"], e["request_id"]) for e in cross] == [  # ... but audited with who asked
        ("denied", elsewhere.headers["X-Request-ID"])
    ]

    before, rows = refusals["unauthenticated"], _count(platform_env)
    for _ in range(3):
        platform_env.client.get("/api/v1/projects", headers={"Authorization": "Bearer kos_wrong"})
        platform_env.client.get("/api/v1/projects")
    assert refusals["unauthenticated"] == before + 6 and _count(platform_env) == rows  # no writes
    long_path = "/api/v1/projects/vault/deployments/" + "d" * 128  # over audit_events.action's 128
    assert platform_env.call("GET", long_path, token=viewer).status_code == 404
    assert _count(platform_env) == rows + 1  # recorded, its action cut to fit the column


def _count(platform_env) -> int:
    from sqlalchemy import func, select

    with platform_env.database.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_query_filters(platform_env) -> None:
    platform_env.ok("POST", "/api/v1/teams", json={"name": "compliance"})
    team_event = platform_env.ok("GET", "/api/v1/audit", params={"object": "compliance"})[0]
    platform_env.ok("POST", "/api/v1/projects", json={"name": "aml", "team": "compliance"})
    by_object = platform_env.ok("GET", "/api/v1/audit", params={"object": "aml"})
    assert [e["action"] for e in by_object] == ["project.create"]
    by_project = platform_env.ok("GET", "/api/v1/audit", params={"project": "aml"})
    assert {e["project"] for e in by_project} == {"aml"}
    since = platform_env.ok("GET", "/api/v1/audit", params={"since": team_event["at"]})
    assert {e["object_name"] for e in since} == {"compliance", "aml"}
    until = platform_env.ok("GET", "/api/v1/audit", params={"until": team_event["at"]})
    assert {e["object_name"] for e in until} & {"compliance", "aml"} == set()
    assert "demo" in {e["object_name"] for e in until}
    naive = platform_env.call("GET", "/api/v1/audit", params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["details"][0]["field"] == "since"


def test_viewers_cannot_read_the_audit_log(platform_env) -> None:
    viewer = platform_env.user_with_token("val", project="demo", role="viewer")
    response = platform_env.call("GET", "/api/v1/audit", token=viewer, params={"project": "demo"})
    assert response.status_code == 403


def test_the_database_refuses_to_change_history(platform_env) -> None:
    for statement in (update(AuditEvent).values(actor="someone-else"), delete(AuditEvent)):
        with pytest.raises(DBAPIError, match="append-only"), platform_env.database.transaction() as session:
            session.execute(statement)
    assert platform_env.ok("GET", "/api/v1/audit", params={"actor": "admin"})
