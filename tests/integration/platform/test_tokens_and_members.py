"""Tokens stay inside the token that minted them; members and users can be taken away."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from kosmos.platform.db.models import AuditEvent


def _token(env, user: str, token: str | None = None, **body) -> str:
    return env.ok("POST", "/api/v1/tokens", token=token, json={"user": user, **body})["token"]


def test_a_child_token_never_outlives_its_parent_and_dies_with_it(platform_env) -> None:
    platform_env.user_with_token("ed", project="demo", role="viewer")
    parent = _token(platform_env, "ed", name="day", project="demo", role="viewer", ttl_days=1)
    child = platform_env.call(
        "POST",
        "/api/v1/tokens",
        token=parent,
        json={"name": "forever", "project": "demo", "role": "viewer", "ttl_days": None},
    )
    assert child.status_code == 201, child.text
    mine = {t["name"]: t for t in platform_env.ok("GET", "/api/v1/tokens", token=parent)}
    assert child.json()["expires_at"] is not None
    assert datetime.fromisoformat(child.json()["expires_at"]) <= datetime.fromisoformat(
        mine["day"]["expires_at"]
    )
    grandchild = platform_env.ok(
        "POST",
        "/api/v1/tokens",
        token=child.json()["token"],
        json={"name": "grand", "project": "demo", "role": "viewer"},
    )["token"]
    assert platform_env.call("GET", "/api/v1/whoami", token=grandchild).status_code == 200

    platform_env.ok("DELETE", "/api/v1/tokens/day", token=parent)
    for secret in (child.json()["token"], grandchild):
        refused = platform_env.call("GET", "/api/v1/whoami", token=secret)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    with platform_env.database.transaction() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "token.revoke")).all()[-1]
        assert sorted(event.details["children_revoked"]) == ["ed/forever", "ed/grand"]


def test_a_scoped_token_sees_and_revokes_only_its_own_scope(platform_env) -> None:
    platform_env.user_with_token("fay", project="demo", role="admin")  # fay-token: unscoped
    scoped = _token(platform_env, "fay", name="fay-view", project="demo", role="viewer")
    _token(platform_env, "fay", name="fay-dev", project="demo", role="developer")
    listed = [t["name"] for t in platform_env.ok("GET", "/api/v1/tokens", token=scoped)]
    assert listed == ["fay-view"]
    for name in ("fay-token", "fay-dev"):
        refused = platform_env.call("DELETE", f"/api/v1/tokens/{name}", token=scoped)
        assert refused.status_code == 404, (name, refused.text)
    everything = {t["name"]: t for t in platform_env.ok("GET", "/api/v1/tokens", params={"user": "fay"})}
    assert everything["fay-token"]["revoked_at"] is None and everything["fay-dev"]["revoked_at"] is None


def test_team_routes_honour_the_tokens_role_cap(platform_env) -> None:
    platform_env.user_with_token("gus", team="risk", team_role="admin")
    platform_env.ok("POST", "/api/v1/users", json={"name": "hal"})
    capped = _token(platform_env, "gus", name="gus-view", role="viewer")
    promote = platform_env.call("PUT", "/api/v1/teams/risk/members/hal", token=capped, json={"role": "admin"})
    assert promote.status_code == 403, promote.text
    create = platform_env.call(
        "POST", "/api/v1/projects", token=capped, json={"name": "sneaky", "team": "risk"}
    )
    assert create.status_code == 403, create.text
    uncapped = _token(platform_env, "gus", name="gus-full")
    assert (
        platform_env.call(
            "PUT", "/api/v1/teams/risk/members/hal", token=uncapped, json={"role": "viewer"}
        ).status_code
        == 200
    )


def test_removing_members_and_disabling_users_takes_access_away_and_is_audited(platform_env) -> None:
    direct = platform_env.user_with_token("ian", project="demo", role="developer")
    via_team = platform_env.user_with_token("joy", team="risk", team_role="developer")
    for token in (direct, via_team):
        assert platform_env.call("GET", "/api/v1/projects/demo", token=token).status_code == 200

    assert platform_env.call("DELETE", "/api/v1/projects/demo/members/ian").status_code == 204
    assert platform_env.call("DELETE", "/api/v1/projects/demo/members/ian").status_code == 204  # idempotent
    assert platform_env.call("GET", "/api/v1/projects/demo", token=direct).status_code == 404
    assert platform_env.call("DELETE", "/api/v1/teams/risk/members/joy").status_code == 204
    assert platform_env.call("GET", "/api/v1/projects/demo", token=via_team).status_code == 404

    platform_env.user_with_token("kim", project="demo", role="admin")
    kim = _token(platform_env, "kim", name="kim-2")
    assert platform_env.call("DELETE", "/api/v1/projects/demo/members/kim", token=direct).status_code == 404
    disabled = platform_env.ok("POST", "/api/v1/users/kim/disable")
    assert disabled["disabled"] is True
    refused = platform_env.call("GET", "/api/v1/whoami", token=kim)
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]
    assert platform_env.call("POST", "/api/v1/users/kim/enable", token=via_team).status_code == 403
    assert platform_env.call("POST", "/api/v1/users/admin/disable").status_code == 403  # not yourself
    platform_env.ok("POST", "/api/v1/users/kim/enable")
    assert platform_env.call("GET", "/api/v1/whoami", token=kim).status_code == 200

    with platform_env.database.transaction() as session:
        actions = [
            (e.action, e.object_name, (e.details or {}).get("user"))
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]
    assert ("project.member.remove", "demo", "ian") in actions
    assert ("team.member.remove", "risk", "joy") in actions
    assert [a for a in actions if a[0] in ("user.disable", "user.enable")] == [
        ("user.disable", "kim", None),
        ("user.enable", "kim", None),
    ]
