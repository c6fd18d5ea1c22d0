"""Users, teams, projects and memberships: the service layer behind every door."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kosmos.platform.context import CallContext
from kosmos.platform.db.models import Project, ProjectMember, Role, Team, TeamMember, User
from kosmos.platform.errors import Conflict, Forbidden, NotFound
from kosmos.platform.identity.access import get_user, project_role, require_platform_admin
from kosmos.platform.identity.names import canonical_name


def create_user(ctx: CallContext, name: str, *, email: str | None = None, is_admin: bool = False) -> User:
    require_platform_admin(ctx.principal, "create users")
    user = User(name=name, email=email, is_admin=is_admin, disabled=False)
    ctx.insert(user, f"user {name!r}")
    ctx.audit("user.create", "user", name, details={"is_admin": is_admin})
    return user


def list_users(ctx: CallContext) -> list[User]:
    require_platform_admin(ctx.principal, "list users")
    return list(ctx.session.scalars(select(User).order_by(User.name)))


def set_user_disabled(ctx: CallContext, name: str, disabled: bool) -> User:
    """Disable a user (every token of theirs stops working at once) or enable them again."""
    require_platform_admin(ctx.principal, "disable or enable users")
    user = get_user(ctx.session, name)
    if disabled and user.id == ctx.principal.user_id:
        raise Forbidden("you cannot disable yourself; ask another platform administrator")
    if user.disabled != disabled:
        user.disabled = disabled
        ctx.identity_changed = True
        ctx.audit("user.disable" if disabled else "user.enable", "user", name)
    return user


def create_team(ctx: CallContext, name: str, *, description: str = "") -> Team:
    require_platform_admin(ctx.principal, "create teams")
    team = Team(name=name, description=description)
    ctx.insert(team, f"team {name!r}")
    ctx.audit("team.create", "team", name)
    return team


def _team_role(session: Session, team: Team, user_id: int) -> Role | None:
    role = session.scalar(
        select(TeamMember.role).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id)
    )
    return Role(role) if role is not None else None


def _acting_team_role(ctx: CallContext, team: Team) -> Role | None:
    """The caller's role on ``team`` as its token may use it: capped by the token's role limit."""
    role = _team_role(ctx.session, team, ctx.principal.user_id)
    if role is not None and ctx.principal.token_max_role is not None:
        role = min(role, ctx.principal.token_max_role)
    return role


def get_team(ctx: CallContext, name: str) -> Team:
    """A team the principal belongs to (platform admins see every team)."""
    team = ctx.session.scalar(select(Team).where(Team.name == name))
    visible = team is not None and (
        ctx.principal.platform_admin
        or (
            ctx.principal.token_project_id is None
            and _team_role(ctx.session, team, ctx.principal.user_id) is not None
        )
    )
    if not visible:
        raise NotFound(f"team {name!r} not found")
    assert team is not None
    return team


def list_teams(ctx: CallContext) -> list[Team]:
    stmt = select(Team).order_by(Team.name)
    if not ctx.principal.platform_admin:
        if ctx.principal.token_project_id is not None:
            return []
        stmt = stmt.join(TeamMember).where(TeamMember.user_id == ctx.principal.user_id)
    return list(ctx.session.scalars(stmt))


def _require_team_admin(ctx: CallContext, team: Team) -> None:
    if not ctx.principal.platform_admin and _acting_team_role(ctx, team) != Role.admin:
        raise Forbidden(f"only an admin of team {team.name!r} may change its members")


def add_team_member(ctx: CallContext, team_name: str, user_name: str, role: Role) -> TeamMember:
    team = get_team(ctx, team_name)
    _require_team_admin(ctx, team)
    user = get_user(ctx.session, user_name)
    member = ctx.session.get(TeamMember, (team.id, user.id))
    if member is None:
        member = TeamMember(team_id=team.id, user_id=user.id, role=int(role))
        ctx.session.add(member)
    else:
        member.role = int(role)
    ctx.identity_changed = True
    ctx.audit("team.member.set", "team", team_name, details={"user": user_name, "role": role.name})
    return member


def remove_team_member(ctx: CallContext, team_name: str, user_name: str) -> None:
    """Take a user off a team (their role on the team's projects goes with it); idempotent."""
    team = get_team(ctx, team_name)
    _require_team_admin(ctx, team)
    user = get_user(ctx.session, user_name)
    member = ctx.session.get(TeamMember, (team.id, user.id))
    if member is not None:
        ctx.session.delete(member)
        ctx.identity_changed = True
        ctx.audit("team.member.remove", "team", team_name, details={"user": user_name})


def create_project(ctx: CallContext, name: str, team_name: str, *, description: str = "") -> Project:
    """A new project owned by ``team_name``; needs maintainer on that team, or platform admin."""
    team = get_team(ctx, team_name)
    if not ctx.principal.platform_admin:
        role = _acting_team_role(ctx, team)
        if role is None or role < Role.maintainer:
            raise Forbidden(f"creating projects for team {team_name!r} needs team role maintainer")
    twin = next(
        (p for p in ctx.session.scalars(select(Project.name)) if canonical_name(p) == canonical_name(name)),
        None,
    )
    if twin is not None and twin != name:
        raise Conflict(
            f"project {name!r} would collide with project {twin!r}: names that differ only in '-' "
            "and '_' are one name in the tools Kosmos wraps (Feast)"
        )
    project = Project(name=name, team_id=team.id, description=description)
    ctx.insert(project, f"project {name!r}")
    ctx.audit("project.create", "project", name, project=name, details={"team": team_name})
    return project


def list_projects(ctx: CallContext) -> list[tuple[Project, Role]]:
    """Every project the principal can see, with the role it holds there."""
    projects = ctx.session.scalars(select(Project).order_by(Project.name))
    visible = []
    for project in projects:
        role = project_role(ctx.session, ctx.principal, project)
        if role is not None:
            visible.append((project, role))
    return visible


def set_project_member(ctx: CallContext, project_name: str, user_name: str, role: Role) -> ProjectMember:
    project = ctx.project(project_name, Role.admin)
    user = get_user(ctx.session, user_name)
    member = ctx.session.get(ProjectMember, (project.id, user.id))
    if member is None:
        member = ProjectMember(project_id=project.id, user_id=user.id, role=int(role))
        ctx.session.add(member)
    else:
        member.role = int(role)
    ctx.identity_changed = True
    ctx.audit(
        "project.member.set",
        "project",
        project_name,
        project=project_name,
        details={"user": user_name, "role": role.name},
    )
    return member


def remove_project_member(ctx: CallContext, project_name: str, user_name: str) -> None:
    """Take a user's direct role on a project away (a team role stays); idempotent."""
    project = ctx.project(project_name, Role.admin)
    user = get_user(ctx.session, user_name)
    member = ctx.session.get(ProjectMember, (project.id, user.id))
    if member is not None:
        ctx.session.delete(member)
        ctx.identity_changed = True
        ctx.audit(
            "project.member.remove",
            "project",
            project_name,
            project=project_name,
            details={"user": user_name},
        )


def list_project_members(ctx: CallContext, project_name: str) -> list[tuple[str, Role]]:
    project = ctx.project(project_name, Role.viewer)
    rows = ctx.session.execute(
        select(User.name, ProjectMember.role)
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.name)
    )
    return [(name, Role(role)) for name, role in rows]
