"""A token of project A can do nothing in project B, on every registered route."""

from __future__ import annotations

import re

# Routes that name no project. Each must be listed here on purpose, with what it
# exposes to a project-scoped token; a new route fails this test until it is classified.
GLOBAL_ROUTES = {
    ("GET", "/api/v1/whoami"),  # the caller themself
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users"),  # platform admins only
    ("POST", "/api/v1/users/{user}/disable"),  # platform admins only
    ("POST", "/api/v1/users/{user}/enable"),
    ("POST", "/api/v1/teams"),
    ("GET", "/api/v1/teams"),  # admins; members see their teams
    ("GET", "/api/v1/teams/{team}"),
    ("PUT", "/api/v1/teams/{team}/members/{user}"),  # team admins, their token's cap applied
    ("DELETE", "/api/v1/teams/{team}/members/{user}"),
    ("POST", "/api/v1/projects"),
    ("GET", "/api/v1/projects"),  # only visible projects
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/tokens"),  # the caller's own tokens
    ("DELETE", "/api/v1/tokens/{name}"),
    ("GET", "/api/v1/audit"),  # needs ?project=, checked like a path
    ("GET", "/api/v1/plugins"),  # installed package names
    ("GET", "/api/v1/cluster"),  # the shared Ray cluster's nodes: no project data
    ("GET", "/api/v1/dataplane"),  # the data plane's URL: no project data
}
DATAPLANE_GLOBAL_ROUTES = {("GET", "/healthz")}  # the ingress replica is up: nothing else


def _api_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /api/v1, from its OpenAPI document."""
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    )


def _setup(platform_env) -> str:
    platform_env.ok("POST", "/api/v1/teams", json={"name": "bank"})
    platform_env.ok("POST", "/api/v1/projects", json={"name": "proj-a", "team": "bank"})
    platform_env.ok("POST", "/api/v1/projects", json={"name": "proj-b", "team": "bank"})
    return platform_env.user_with_token("alice", project="proj-a", role="admin", scoped=True)


def test_every_project_route_refuses_another_projects_token(platform_env) -> None:
    token_a = _setup(platform_env)
    routes = _api_routes(platform_env.client.app)
    unclassified = [r for r in routes if "{project}" not in r[1] and r not in GLOBAL_ROUTES]
    assert len(routes) >= len(GLOBAL_ROUTES)
    assert not unclassified, f"classify these routes in GLOBAL_ROUTES or scope them: {unclassified}"

    walked = 0
    for method, path in routes:
        if "{project}" not in path:
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: "proj-b" if m[1] == "project" else "x", path)
        response = platform_env.call(method, url, token=token_a, json={})
        assert response.status_code in (403, 404), (method, path, response.status_code)
        assert "proj-b" not in response.text or "not found" in response.text
        # the same route in the token's own project is not refused for scope reasons
        own = platform_env.call(method, url.replace("proj-b", "proj-a"), token=token_a, json={})
        assert own.status_code not in (401, 403), (method, path, own.text)
        walked += 1
    assert walked >= 3


def test_every_data_plane_route_refuses_another_projects_token(platform_env) -> None:
    """The data plane's app, as its ingress replica serves it (every plugin's data-plane routes)."""
    from fastapi.testclient import TestClient

    from kosmos.deployment.dataplane import Handles, RoutingTable
    from kosmos.platform.api.dataplane import create_dataplane_app

    token_a = _setup(platform_env)
    app = create_dataplane_app(platform_env.settings, platform_env.database)
    app.state.routes = RoutingTable(platform_env.database, 1.0)
    app.state.routes.refresh()
    app.state.handles = Handles()
    routes = sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops)
    unclassified = [
        r for r in routes if not r[1].startswith("/{project}/") and r not in DATAPLANE_GLOBAL_ROUTES
    ]
    assert not unclassified, f"scope these data-plane routes under /{{project}}: {unclassified}"
    with TestClient(app) as plane:
        walked = 0
        for method, path in routes:
            if not path.startswith("/{project}/"):
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: "proj-b" if m[1] == "project" else "x", path)
            headers = {"Authorization": f"Bearer {token_a}"}
            refused = plane.request(method, url, headers=headers, content=b"{not json")
            assert refused.status_code == 404, (method, path, refused.status_code, refused.text)
            assert refused.json()["error"]["message"] == "project 'proj-b' not found"
            anonymous = plane.request(method, url, content=b"{not json")
            assert anonymous.status_code == 401, (method, path, anonymous.text)  # before the body
            own = plane.request(method, url.replace("proj-b", "proj-a"), headers=headers, json={})
            assert own.status_code not in (401, 403), (method, path, own.text)
            walked += 1
    assert walked >= 5  # predict, batch, online features, the OpenAI routes


def test_a_project_b_that_exists_looks_like_one_that_does_not(platform_env) -> None:
    token_a = _setup(platform_env)
    existing = platform_env.call("GET", "/api/v1/projects/proj-b", token=token_a)
    missing = platform_env.call("GET", "/api/v1/projects/proj-zzz", token=token_a)
    assert existing.status_code == missing.status_code == 404
    assert existing.json()["error"]["message"].replace("proj-b", "X") == missing.json()["error"][
        "message"
    ].replace("proj-zzz", "X")


def test_global_routes_reveal_nothing_of_project_b(platform_env) -> None:
    token_a = _setup(platform_env)
    names = [p["name"] for p in platform_env.ok("GET", "/api/v1/projects", token=token_a)]
    assert names == ["proj-a"]
    assert (
        platform_env.call("GET", "/api/v1/audit", token=token_a, params={"project": "proj-b"}).status_code
        == 404
    )
    assert platform_env.call("GET", "/api/v1/audit", token=token_a).status_code == 403
    assert platform_env.ok("GET", "/api/v1/teams", token=token_a) == []
    assert platform_env.call("GET", "/api/v1/teams/bank", token=token_a).status_code == 404
    assert platform_env.call("GET", "/api/v1/users", token=token_a).status_code == 403
    response = platform_env.call(
        "POST", "/api/v1/tokens", token=token_a, json={"name": "sneaky", "project": "proj-b"}
    )
    assert response.status_code == 404
