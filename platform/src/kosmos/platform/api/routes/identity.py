"""REST routes for users, teams, projects, memberships and tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from kosmos.platform.api.deps import CallDep, requires
from kosmos.platform.api.schemas import (
    MemberOut,
    MemberSet,
    ProjectCreate,
    ProjectOut,
    TeamCreate,
    TeamOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    WhoAmI,
)
from kosmos.platform.db.models import ApiToken, Project, Role
from kosmos.platform.identity import service, token_service
from kosmos.platform.identity.access import project_role
from kosmos.platform.identity.names import Name

router = APIRouter()


def _token_out(row: ApiToken) -> dict:
    return {
        "name": row.name,
        "user": row.user.name,
        "prefix": row.prefix,
        "project": row.project.name if row.project else None,
        "role": Role(row.max_role).name if row.max_role is not None else None,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
    }


def _project_out(project: Project, role: Role) -> ProjectOut:
    return ProjectOut(
        name=project.name,
        team=project.team.name,
        description=project.description,
        created_at=project.created_at,
        role=role.name,
    )


@router.get("/whoami", response_model=WhoAmI, tags=["identity"])
def whoami(call: CallDep) -> WhoAmI:
    """The user behind the token, and the token's limits."""
    p = call.principal
    with call.tx() as ctx:
        scoped = ctx.session.get(Project, p.token_project_id) if p.token_project_id else None
        return WhoAmI(
            user=p.user_name,
            is_admin=p.is_admin,
            token_project=scoped.name if scoped else None,
            token_role=p.token_max_role.name if p.token_max_role else None,
        )


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, tags=["identity"])
def create_user(body: UserCreate, call: CallDep) -> UserOut:
    """Create a user (platform admins only)."""
    with call.tx() as ctx:
        user = service.create_user(ctx, body.name, email=body.email, is_admin=body.is_admin)
        return UserOut.model_validate(user, from_attributes=True)


@router.post("/users/{user}/disable", response_model=UserOut, tags=["identity"])
def disable_user(user: Name, call: CallDep) -> UserOut:
    """Disable a user: every token of theirs is refused at once (platform admins only; audited)."""
    with call.tx() as ctx:
        return UserOut.model_validate(service.set_user_disabled(ctx, user, True), from_attributes=True)


@router.post("/users/{user}/enable", response_model=UserOut, tags=["identity"])
def enable_user(user: Name, call: CallDep) -> UserOut:
    """Enable a disabled user again (platform admins only; audited)."""
    with call.tx() as ctx:
        return UserOut.model_validate(service.set_user_disabled(ctx, user, False), from_attributes=True)


@router.get("/users", response_model=list[UserOut], tags=["identity"])
def list_users(call: CallDep) -> list[UserOut]:
    with call.tx() as ctx:
        return [UserOut.model_validate(u, from_attributes=True) for u in service.list_users(ctx)]


@router.post("/teams", response_model=TeamOut, status_code=status.HTTP_201_CREATED, tags=["teams"])
def create_team(body: TeamCreate, call: CallDep) -> TeamOut:
    """Create a team, e.g. a business unit such as risk or compliance (platform admins only)."""
    with call.tx() as ctx:
        team = service.create_team(ctx, body.name, description=body.description)
        return TeamOut.model_validate(team, from_attributes=True)


@router.get("/teams", response_model=list[TeamOut], tags=["teams"])
def list_teams(call: CallDep) -> list[TeamOut]:
    with call.tx() as ctx:
        return [TeamOut.model_validate(t, from_attributes=True) for t in service.list_teams(ctx)]


@router.get("/teams/{team}", response_model=TeamOut, tags=["teams"])
def show_team(team: Name, call: CallDep) -> TeamOut:
    with call.tx() as ctx:
        return TeamOut.model_validate(service.get_team(ctx, team), from_attributes=True)


@router.put("/teams/{team}/members/{user}", response_model=MemberOut, tags=["teams"])
def set_team_member(team: Name, user: Name, body: MemberSet, call: CallDep) -> MemberOut:
    """Give a user a role on every project of the team."""
    with call.tx() as ctx:
        service.add_team_member(ctx, team, user, Role[body.role])
        return MemberOut(user=user, role=body.role)


@router.delete("/teams/{team}/members/{user}", status_code=status.HTTP_204_NO_CONTENT, tags=["teams"])
def remove_team_member(team: Name, user: Name, call: CallDep) -> None:
    """Take a user off the team (team admins only; removing a non-member changes nothing)."""
    with call.tx() as ctx:
        service.remove_team_member(ctx, team, user)


@router.post("/projects", response_model=ProjectOut, status_code=status.HTTP_201_CREATED, tags=["projects"])
def create_project(body: ProjectCreate, call: CallDep) -> ProjectOut:
    """Create a project owned by a team."""
    with call.tx() as ctx:
        project = service.create_project(ctx, body.name, body.team, description=body.description)
        role = project_role(ctx.session, ctx.principal, project) or Role.admin
        return _project_out(project, role)


@router.get("/projects", response_model=list[ProjectOut], tags=["projects"])
def list_projects(call: CallDep) -> list[ProjectOut]:
    """The projects the token can see, with the caller's role on each."""
    with call.tx() as ctx:
        return [_project_out(p, r) for p, r in service.list_projects(ctx)]


@router.get("/projects/{project}", response_model=ProjectOut, tags=["projects"])
def show_project(project: Name, call: CallDep) -> ProjectOut:
    with call.tx() as ctx:
        row = ctx.project(project, Role.viewer)
        return _project_out(row, project_role(ctx.session, ctx.principal, row) or Role.viewer)


@router.get("/projects/{project}/members", response_model=list[MemberOut], tags=["projects"])
def list_members(project: Name, call: CallDep) -> list[MemberOut]:
    with call.tx() as ctx:
        return [MemberOut(user=u, role=r.name) for u, r in service.list_project_members(ctx, project)]


@router.put(
    "/projects/{project}/members/{user}",
    dependencies=[requires(Role.admin)],
    response_model=MemberOut,
    tags=["projects"],
)
def set_member(project: Name, user: Name, body: MemberSet, call: CallDep) -> MemberOut:
    """Give a user a role on the project (project admins only)."""
    with call.tx() as ctx:
        service.set_project_member(ctx, project, user, Role[body.role])
        return MemberOut(user=user, role=body.role)


@router.delete(
    "/projects/{project}/members/{user}",
    dependencies=[requires(Role.admin)],
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["projects"],
)
def remove_member(project: Name, user: Name, call: CallDep) -> None:
    """Take a user's direct role on the project away (project admins only; a team role stays)."""
    with call.tx() as ctx:
        service.remove_project_member(ctx, project, user)


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, tags=["tokens"])
def create_token(body: TokenCreate, call: CallDep) -> TokenCreated:
    """Create a token; the secret is in this response only."""
    with call.tx() as ctx:
        issued = token_service.issue_token(
            ctx,
            body.name,
            project=body.project,
            role=Role[body.role] if body.role else None,
            ttl_days=body.ttl_days,
            user=body.user,
        )
        ctx.session.refresh(issued.row)
        return TokenCreated(**_token_out(issued.row), token=issued.secret)


@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
def list_tokens(call: CallDep, user: Name | None = None) -> list[TokenOut]:
    """Your tokens (never their secrets)."""
    with call.tx() as ctx:
        return [TokenOut(**_token_out(t)) for t in token_service.list_tokens(ctx, user=user)]


@router.delete("/tokens/{name}", response_model=TokenOut, tags=["tokens"])
def revoke_token(name: Name, call: CallDep, user: Name | None = None) -> TokenOut:
    """Revoke a token at once; revoking it again changes nothing."""
    with call.tx() as ctx:
        return TokenOut(**_token_out(token_service.revoke_token(ctx, name, user=user)))
