"""Who is calling (authentication) and what they may do (authorization)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from kosmos.platform.db.models import ApiToken, Project, ProjectMember, Role, TeamMember, User, utcnow
from kosmos.platform.errors import Forbidden, NotFound, Unauthenticated
from kosmos.platform.identity.tokens import TOKEN_PREFIX, hash_token

_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The user behind a request, and the limits of the token they used."""

    user_id: int
    user_name: str
    is_admin: bool
    token_id: int | None = None
    token_project_id: int | None = None
    token_max_role: Role | None = None
    token_expires_at: datetime | None = None

    @property
    def platform_admin(self) -> bool:
        """A platform administrator acting with an unrestricted token."""
        return self.is_admin and self.token_project_id is None and self.token_max_role is None


class AccessCache:
    """Recent successful access checks: (token hash, project) -> principal, for ``ttl_s``.

    Only successes are kept, so a refusal is always decided by the database. Any
    change that can narrow access, made through this process, clears it.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[tuple[str, str | None], tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, project: str | None) -> Principal | None:
        if self.ttl_s <= 0:
            return None
        key = (hash_token(token), project)
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        expires = entry[1].token_expires_at
        if expires is not None and expires <= utcnow():
            return None  # let the database say why it is refused
        return entry[1]

    def put(self, token: str, project: str | None, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[(hash_token(token), project)] = (time.monotonic() + self.ttl_s, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def authenticate(session: Session, token: str | None) -> Principal:
    """The principal for ``token``; Unauthenticated says why it was refused."""
    if not token:
        raise Unauthenticated("missing API token: send 'Authorization: Bearer <token>'")
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthenticated("malformed API token")
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        raise Unauthenticated("invalid API token")
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthenticated(f"API token {row.name!r} was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(f"API token {row.name!r} expired at {row.expires_at.isoformat()}")
    user = row.user
    if user.disabled:
        raise Unauthenticated(f"user {user.name!r} is disabled")
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Principal(
        user_id=user.id,
        user_name=user.name,
        is_admin=user.is_admin,
        token_id=row.id,
        token_project_id=row.project_id,
        token_max_role=Role(row.max_role) if row.max_role is not None else None,
        token_expires_at=row.expires_at,
    )


def project_role(session: Session, principal: Principal, project: Project) -> Role | None:
    """The principal's effective role on ``project``, or None for no access at all."""
    if principal.token_project_id is not None and principal.token_project_id != project.id:
        return None
    if principal.is_admin:
        role: Role | None = Role.admin
    else:
        direct = session.scalar(
            select(ProjectMember.role).where(
                ProjectMember.project_id == project.id, ProjectMember.user_id == principal.user_id
            )
        )
        via_team = session.scalar(
            select(TeamMember.role).where(
                TeamMember.team_id == project.team_id, TeamMember.user_id == principal.user_id
            )
        )
        grants = [r for r in (direct, via_team) if r is not None]
        role = Role(max(grants)) if grants else None
    if role is not None and principal.token_max_role is not None:
        role = min(role, principal.token_max_role)
    return role


def project_roles(session: Session, principal: Principal) -> dict[str, Role]:
    """Every project the principal holds a role on, with that role (as ``project_role`` decides)."""
    projects = session.execute(select(Project.id, Project.name, Project.team_id)).all()
    if principal.token_project_id is not None:
        projects = [p for p in projects if p.id == principal.token_project_id]
    direct: dict[int, int] = {}
    teams: dict[int, int] = {}
    if not principal.is_admin:
        direct = dict(
            session.execute(
                select(ProjectMember.project_id, ProjectMember.role).where(
                    ProjectMember.user_id == principal.user_id
                )
            ).all()
        )
        teams = dict(
            session.execute(
                select(TeamMember.team_id, TeamMember.role).where(TeamMember.user_id == principal.user_id)
            ).all()
        )
    roles: dict[str, Role] = {}
    for project in projects:
        if principal.is_admin:
            role = Role.admin
        else:
            grants = [r for r in (direct.get(project.id), teams.get(project.team_id)) if r is not None]
            if not grants:
                continue
            role = Role(max(grants))
        if principal.token_max_role is not None:
            role = min(role, principal.token_max_role)
        roles[project.name] = role
    return roles


def require_project(session: Session, principal: Principal, name: str, minimum: Role) -> Project:
    """The project ``name`` if the principal holds at least ``minimum`` on it.

    A project the principal cannot see at all answers exactly like one that does
    not exist, so a token never learns which names other projects use.
    """
    project = session.scalar(select(Project).where(Project.name == name))
    role = project_role(session, principal, project) if project is not None else None
    if project is None or role is None:
        raise NotFound(f"project {name!r} not found")
    if role < minimum:
        raise Forbidden(
            f"role {minimum.name} or higher on project {name!r} is required; you have {role.name}"
        )
    return project


def require_platform_admin(principal: Principal, action: str) -> None:
    if not principal.platform_admin:
        raise Forbidden(f"only a platform administrator may {action}")


def get_user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"user {name!r} not found")
    return user
