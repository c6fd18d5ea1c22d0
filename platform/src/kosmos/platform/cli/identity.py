"""`kosmos projects|teams|users|tokens|audit`: identity and audit from the command line."""

from __future__ import annotations

import typer

from kosmos.platform.cli.output import Output, OutputOption, handle_errors, render
from kosmos.platform.client import KosmosClient

projects = typer.Typer(help="Projects: create, list, show, members.", no_args_is_help=True)
teams = typer.Typer(help="Teams (business units) that own projects.", no_args_is_help=True)
users = typer.Typer(help="Users (platform admins only).", no_args_is_help=True)
tokens = typer.Typer(help="Your API tokens.", no_args_is_help=True)
audit = typer.Typer(help="The append-only audit log.", no_args_is_help=True)

ROLE_HELP = "viewer, developer, maintainer or admin."


@projects.command("create")
@handle_errors
def projects_create(
    name: str,
    team: str = typer.Option(..., help="Owning team."),
    description: str = "",
    output: Output = OutputOption,
) -> None:
    """Create a project owned by a team."""
    with KosmosClient() as c:
        render(c.post("/projects", {"name": name, "team": team, "description": description}), output)


@projects.command("list")
@handle_errors
def projects_list(output: Output = OutputOption) -> None:
    """The projects your token can see."""
    with KosmosClient() as c:
        render(c.get("/projects"), output, ["name", "team", "role", "description"])


@projects.command("show")
@handle_errors
def projects_show(name: str, output: Output = OutputOption) -> None:
    with KosmosClient() as c:
        render(c.get(f"/projects/{name}"), output)


@projects.command("members")
@handle_errors
def projects_members(name: str, output: Output = OutputOption) -> None:
    """Who holds which role on a project."""
    with KosmosClient() as c:
        render(c.get(f"/projects/{name}/members"), output)


@projects.command("add-member")
@handle_errors
def projects_add_member(
    name: str, user: str, role: str = typer.Option(..., help=ROLE_HELP), output: Output = OutputOption
) -> None:
    """Give a user a role on a project (or change it)."""
    with KosmosClient() as c:
        render(c.put(f"/projects/{name}/members/{user}", {"role": role}), output)


@projects.command("remove-member")
@handle_errors
def projects_remove_member(name: str, user: str) -> None:
    """Take a user's direct role on a project away (a role through the team stays)."""
    with KosmosClient() as c:
        c.delete(f"/projects/{name}/members/{user}")
    typer.echo(f"{user} is no longer a direct member of {name}")


@teams.command("create")
@handle_errors
def teams_create(name: str, description: str = "", output: Output = OutputOption) -> None:
    with KosmosClient() as c:
        render(c.post("/teams", {"name": name, "description": description}), output)


@teams.command("list")
@handle_errors
def teams_list(output: Output = OutputOption) -> None:
    with KosmosClient() as c:
        render(c.get("/teams"), output, ["name", "description", "created_at"])


@teams.command("show")
@handle_errors
def teams_show(name: str, output: Output = OutputOption) -> None:
    with KosmosClient() as c:
        render(c.get(f"/teams/{name}"), output)


@teams.command("add-member")
@handle_errors
def teams_add_member(
    name: str, user: str, role: str = typer.Option(..., help=ROLE_HELP), output: Output = OutputOption
) -> None:
    """Give a user a role on every project of the team."""
    with KosmosClient() as c:
        render(c.put(f"/teams/{name}/members/{user}", {"role": role}), output)


@teams.command("remove-member")
@handle_errors
def teams_remove_member(name: str, user: str) -> None:
    """Take a user off a team, and so off the team's projects."""
    with KosmosClient() as c:
        c.delete(f"/teams/{name}/members/{user}")
    typer.echo(f"{user} is no longer a member of team {name}")


@users.command("create")
@handle_errors
def users_create(
    name: str, email: str | None = None, admin: bool = False, output: Output = OutputOption
) -> None:
    with KosmosClient() as c:
        render(c.post("/users", {"name": name, "email": email, "is_admin": admin}), output)


@users.command("list")
@handle_errors
def users_list(output: Output = OutputOption) -> None:
    with KosmosClient() as c:
        render(c.get("/users"), output, ["name", "email", "is_admin", "disabled", "created_at"])


def _set_user(name: str, action: str, output: Output) -> None:
    with KosmosClient() as c:
        render(c.post(f"/users/{name}/{action}", {}), output, ["name", "disabled"])


@users.command("disable")
@handle_errors
def users_disable(name: str, output: Output = OutputOption) -> None:
    """Disable a user: every token of theirs is refused from now on."""
    _set_user(name, "disable", output)


@users.command("enable")
@handle_errors
def users_enable(name: str, output: Output = OutputOption) -> None:
    """Enable a disabled user again."""
    _set_user(name, "enable", output)


@tokens.command("create")
@handle_errors
def tokens_create(
    name: str,
    project: str | None = typer.Option(None, help="Limit the token to this project."),
    role: str | None = typer.Option(None, help="Cap the token at this role: " + ROLE_HELP),
    ttl_days: int = typer.Option(90, help="Lifetime in days."),
    user: str | None = typer.Option(None, help="Owner (platform admins only)."),
    output: Output = OutputOption,
) -> None:
    """Create a token. The secret is printed once and never again."""
    with KosmosClient() as c:
        created = c.post(
            "/tokens", {"name": name, "project": project, "role": role, "ttl_days": ttl_days, "user": user}
        )
    render(created, output, ["name", "user", "project", "role", "expires_at", "token"])


@tokens.command("list")
@handle_errors
def tokens_list(user: str | None = None, output: Output = OutputOption) -> None:
    with KosmosClient() as c:
        render(
            c.get("/tokens", user=user),
            output,
            ["name", "prefix", "project", "role", "expires_at", "revoked_at", "last_used_at"],
        )


@tokens.command("revoke")
@handle_errors
def tokens_revoke(name: str, user: str | None = None, output: Output = OutputOption) -> None:
    """Revoke a token at once."""
    with KosmosClient() as c:
        render(c.delete(f"/tokens/{name}", user=user), output, ["name", "user", "revoked_at"])


@audit.command("list")
@handle_errors
def audit_list(
    project: str | None = None,
    actor: str | None = None,
    object: str | None = typer.Option(None, "--object", help="Object name."),  # noqa: A002
    action: str | None = None,
    since: str | None = typer.Option(None, help="ISO time with zone, e.g. 2026-01-01T00:00:00Z."),
    until: str | None = None,
    limit: int = 100,
    output: Output = OutputOption,
) -> None:
    """Audit events, newest first."""
    with KosmosClient() as c:
        rows = c.get(
            "/audit",
            project=project,
            actor=actor,
            object=object,
            action=action,
            since=since,
            until=until,
            limit=limit,
        )
    render(rows, output, ["at", "actor", "action", "object_name", "project", "outcome"])
