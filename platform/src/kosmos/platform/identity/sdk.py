"""``kosmos.projects``, ``kosmos.teams``, ``kosmos.users`` and ``kosmos.tokens`` in a notebook.

Each call goes through the control plane with the session's token, so the same rules and
the same audit apply as on the CLI and REST.
"""

from __future__ import annotations

from typing import Any

from kosmos.platform.client import KosmosClient
from kosmos.platform.fluent import Namespace, current, present


def _call(method: str, path: str, body: Any = None, client: KosmosClient | None = None, **params: Any) -> Any:
    """One control-plane call with ``client``, or the notebook session's (``kosmos.login``)."""
    return present((client or current().client).request(method, path, json=body, params=params))


def create_project(name: str, team: str, *, description: str = "", client: KosmosClient | None = None) -> Any:
    """Create project ``name`` owned by ``team`` (needs team role maintainer, or platform admin)."""
    return _call("POST", "/projects", {"name": name, "team": team, "description": description}, client=client)


def create_team(name: str, *, description: str = "", client: KosmosClient | None = None) -> Any:
    """Create a team, e.g. a business unit such as risk (platform admins only)."""
    return _call("POST", "/teams", {"name": name, "description": description}, client=client)


def list_projects(*, client: KosmosClient | None = None) -> Any:
    """The projects your token can see, with your role on each."""
    return _call("GET", "/projects", client=client)


def list_members(project: str, *, client: KosmosClient | None = None) -> Any:
    """Who holds which role on ``project``."""
    return _call("GET", f"/projects/{project}/members", client=client)


def set_member(project: str, user: str, role: str, *, client: KosmosClient | None = None) -> Any:
    """Give ``user`` a role on ``project`` (project admins only)."""
    return _call("PUT", f"/projects/{project}/members/{user}", {"role": role}, client)


def remove_member(project: str, user: str, *, client: KosmosClient | None = None) -> None:
    """Take ``user``'s direct role on ``project`` away (a role through the team stays)."""
    _call("DELETE", f"/projects/{project}/members/{user}", client=client)


def set_team_member(team: str, user: str, role: str, *, client: KosmosClient | None = None) -> Any:
    """Give ``user`` a role on every project of ``team`` (team admins only)."""
    return _call("PUT", f"/teams/{team}/members/{user}", {"role": role}, client)


def remove_team_member(team: str, user: str, *, client: KosmosClient | None = None) -> None:
    """Take ``user`` off ``team``, and so off its projects."""
    _call("DELETE", f"/teams/{team}/members/{user}", client=client)


def disable_user(user: str, *, client: KosmosClient | None = None) -> Any:
    """Disable ``user``: every token of theirs is refused from now on (platform admins only)."""
    return _call("POST", f"/users/{user}/disable", {}, client)


def enable_user(user: str, *, client: KosmosClient | None = None) -> Any:
    """Enable a disabled user again."""
    return _call("POST", f"/users/{user}/enable", {}, client)


def list_tokens(*, user: str | None = None, client: KosmosClient | None = None) -> Any:
    """Your tokens (never their secrets); a limited token sees only tokens inside its own scope."""
    return _call("GET", "/tokens", client=client, user=user)


def create_token(
    name: str,
    *,
    project: str | None = None,
    role: str | None = None,
    ttl_days: int | None = 90,
    client: KosmosClient | None = None,
) -> Any:
    """A new token of yours; it stays inside this token's scope and expiry and dies with it."""
    body = {"name": name, "project": project, "role": role, "ttl_days": ttl_days}
    return _call("POST", "/tokens", body, client)


def revoke_token(name: str, *, client: KosmosClient | None = None) -> Any:
    """Revoke a token of yours, and every token it minted."""
    return _call("DELETE", f"/tokens/{name}", client=client)


projects = Namespace(
    "projects",
    "Projects and who may use them.",
    create=create_project,
    list=list_projects,
    members=list_members,
    set_member=set_member,
    remove_member=remove_member,
)
teams = Namespace(
    "teams",
    "Teams (business units) that own projects.",
    create=create_team,
    set_member=set_team_member,
    remove_member=remove_team_member,
)
users = Namespace("users", "Users (platform administrators only).", disable=disable_user, enable=enable_user)
tokens = Namespace("tokens", "Your API tokens.", list=list_tokens, create=create_token, revoke=revoke_token)
