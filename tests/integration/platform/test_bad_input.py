"""Bad input gets a 4xx whose JSON names the field and the reason; nothing is half-written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from kosmos.platform.db.models import AuditEvent, Project


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_malformed_json(platform_env) -> None:
    response = platform_env.client.post(
        "/api/v1/teams",
        content=b'{"name": "x",',
        headers={**platform_env.auth(platform_env.admin_token), "Content-Type": "application/json"},
    )
    error = _error(response, 422)
    assert "malformed JSON" in error["details"][0]["reason"]


def test_unknown_field_is_named(platform_env) -> None:
    response = platform_env.call("POST", "/api/v1/teams", json={"name": "ops", "colour": "red"})
    error = _error(response, 422)
    assert {"field": "colour", "reason": "unknown field"} in error["details"]


def test_wrong_type_is_named(platform_env) -> None:
    response = platform_env.call("POST", "/api/v1/tokens", json={"name": "t", "ttl_days": "soon"})
    error = _error(response, 422)
    assert error["details"][0]["field"] == "ttl_days"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must not be empty"),
        ("a" * 129, "at most 128 characters"),
        ("risk/fraud", "path separators"),
        ("risk\\fraud", "path separators"),
        ("risk\nfraud", "control characters"),
        ("Risk Team", "lowercase"),
        ("a--b", "'--'"),  # kosmos--a--b--c would be two different (project, deployment) pairs
        ("risk-", "end with '-'"),
    ],
)
def test_names_that_break_the_rules(platform_env, name: str, reason: str) -> None:
    response = platform_env.call("POST", "/api/v1/projects", json={"name": name, "team": "risk"})
    error = _error(response, 422)
    assert error["details"][0]["field"] == "name"
    assert reason in error["details"][0]["reason"]


def test_duplicate_is_409_and_writes_nothing(platform_env) -> None:
    response = platform_env.call("POST", "/api/v1/projects", json={"name": "demo", "team": "risk"})
    error = _error(response, 409)
    assert "demo" in error["message"]
    with platform_env.database.transaction() as session:
        creations = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "project.create", AuditEvent.object_name == "demo")
        )
    assert creations == 1


def test_a_failed_request_leaves_no_trace_of_its_work(platform_env) -> None:
    # the project is valid, the team is not: nothing of the request may remain
    response = platform_env.call("POST", "/api/v1/projects", json={"name": "orphan", "team": "nope"})
    _error(response, 404)
    platform_env.ok("POST", "/api/v1/users", json={"name": "ursula"})
    response = platform_env.call("PUT", "/api/v1/projects/demo/members/ghost", json={"role": "viewer"})
    _error(response, 404)
    with platform_env.database.transaction() as session:
        assert session.scalar(select(Project).where(Project.name == "orphan")) is None
        actions = set(session.scalars(select(AuditEvent.action)))
    assert "project.member.set" not in actions


def test_unknown_role_is_named(platform_env) -> None:
    response = platform_env.call("PUT", "/api/v1/projects/demo/members/admin", json={"role": "owner"})
    error = _error(response, 422)
    assert error["details"][0]["field"] == "role"


def test_unknown_route_uses_the_error_shape(platform_env) -> None:
    error = _error(platform_env.call("GET", "/api/v1/nothing-here"), 404)
    assert error["code"] == "not_found"


def test_request_id_is_echoed_or_made(platform_env) -> None:
    mine = platform_env.client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert mine.headers["X-Request-ID"] == "trace-123"
    bad = platform_env.client.get("/healthz", headers={"X-Request-ID": "a b\tc"})
    assert bad.headers["X-Request-ID"] != "a b\tc" and len(bad.headers["X-Request-ID"]) == 32


def test_projects_that_one_wrapped_tool_would_merge_are_refused(platform_env) -> None:
    platform_env.ok("POST", "/api/v1/projects", json={"name": "card-risk", "team": "risk"})
    error = _error(
        platform_env.call("POST", "/api/v1/projects", json={"name": "card_risk", "team": "risk"}), 409
    )
    assert "card-risk" in error["message"] and "Feast" in error["message"]


@pytest.mark.parametrize("template", ["../_templates/fraud", "/etc/passwd", "fraud/../fraud", "nope"])
def test_a_feature_template_is_a_name_from_the_registry_never_a_path(platform_env, template: str) -> None:
    response = platform_env.call("POST", "/api/v1/projects/demo/features/init", json={"template": template})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"][0]["field"] == "template"
    if template == "nope":
        assert "fraud" in error["details"][0]["reason"]  # the valid names are listed


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "PUT",
            "/api/v1/projects/demo/cache/namespaces/10000000000000000000000000",
            {"threshold": 0.5},
            "namespace",
        ),
        ("POST", "/api/v1/projects/demo/cache/entries/10000000000000000000000000/flag", {}, "entry"),
        ("POST", "/api/v1/projects/demo/cache/invalidate", {"entry": 10**25}, "entry"),
        ("GET", "/api/v1/projects/demo/prompts/x@y", None, "name"),
        ("GET", "/api/v1/projects/demo/datasets/-h/versions", None, "name"),
        ("GET", "/api/v1/projects/demo/runs?experiment=x%27", None, "experiment"),
        (
            "POST",
            "/api/v1/projects/demo/features/training-set",
            {
                "features": ["a:b"],
                "entity_df": {"user_id": [1, 2], "event_timestamp": ["2026-01-01T00:00:00Z"]},
            },
            "entity_df",
        ),
    ],
)
def test_inputs_that_reached_a_500_name_their_field(platform_env, method, path, body, field) -> None:
    error = _error(platform_env.call(method, path, json=body), 422)
    assert error["details"][0]["field"] == field, error
