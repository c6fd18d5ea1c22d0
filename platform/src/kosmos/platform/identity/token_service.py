"""Creating, listing and revoking API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from kosmos.platform.context import CallContext
from kosmos.platform.db.models import ApiToken, Role, User, utcnow
from kosmos.platform.errors import Forbidden, InvalidInput, NotFound
from kosmos.platform.identity.access import Principal, get_user, require_platform_admin
from kosmos.platform.identity.tokens import display_prefix, hash_token, new_token


@dataclass(frozen=True)
class IssuedToken:
    """A token row plus its secret, which exists only in this object."""

    row: ApiToken
    secret: str


def issue_token(
    ctx: CallContext,
    name: str,
    *,
    project: str | None = None,
    role: Role | None = None,
    ttl_days: int | None = 90,
    user: str | None = None,
) -> IssuedToken:
    """A new token for the caller (or, for a platform admin, for ``user``).

    A token can be limited to one project and to a maximum role; it never grants
    more than its owner holds. A token minted with a token is its child: it stays
    inside the parent's project, role cap and expiry, and dies with the parent.
    """
    principal = ctx.principal
    owner: User
    delegated = user is None or user == principal.user_name
    if not delegated:
        require_platform_admin(principal, "create tokens for other users")
        owner = get_user(ctx.session, user)
    else:
        owner = get_user(ctx.session, principal.user_name)
    project_id = None
    if project is not None:
        project_id = ctx.project(project, Role.viewer).id
    if principal.token_project_id is not None and project_id != principal.token_project_id:
        raise Forbidden("a project-scoped token can only create tokens for its own project")
    if principal.token_max_role is not None and (role is None or role > principal.token_max_role):
        raise Forbidden(
            f"this token is limited to role {principal.token_max_role.name}; new tokens cannot exceed it"
        )
    if ttl_days is not None and ttl_days <= 0:
        raise InvalidInput.field("ttl_days", "must be positive")
    expires_at = utcnow() + timedelta(days=ttl_days) if ttl_days is not None else None
    bounded = delegated and _outlives(expires_at, principal.token_expires_at)
    if bounded:
        expires_at = principal.token_expires_at  # a child never outlives the token that minted it
    secret = new_token()
    row = ApiToken(
        user_id=owner.id,
        project_id=project_id,
        parent_id=principal.token_id if delegated else None,
        name=name,
        prefix=display_prefix(secret),
        token_hash=hash_token(secret),
        max_role=int(role) if role is not None else None,
        expires_at=expires_at,
    )
    ctx.insert(row, f"token {name!r} of user {owner.name!r}")
    ctx.audit(
        "token.create",
        "token",
        f"{owner.name}/{name}",
        project=project,
        details={
            "role": role.name if role else None,
            "ttl_days": ttl_days,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "bounded_by_parent": bounded,
        },
    )
    return IssuedToken(row=row, secret=secret)


def _outlives(expires_at: datetime | None, parent_expires_at: datetime | None) -> bool:
    if parent_expires_at is None:
        return False
    return expires_at is None or expires_at > parent_expires_at


def _within_scope(principal: Principal, row: ApiToken) -> bool:
    """Whether a limited token may see ``row``: same project scope, a role cap no higher."""
    if principal.token_project_id is not None and row.project_id != principal.token_project_id:
        return False
    cap = principal.token_max_role
    return cap is None or (row.max_role is not None and row.max_role <= cap)


def list_tokens(ctx: CallContext, *, user: str | None = None) -> list[ApiToken]:
    """The caller's tokens (a platform admin may name another user)."""
    owner = ctx.principal.user_name
    if user is not None and user != owner:
        require_platform_admin(ctx.principal, "list other users' tokens")
        owner = user
    stmt = select(ApiToken).join(User).where(User.name == owner).order_by(ApiToken.id)
    return [row for row in ctx.session.scalars(stmt) if _within_scope(ctx.principal, row)]


def revoke_token(ctx: CallContext, name: str, *, user: str | None = None) -> ApiToken:
    """Revoke a token by name, and every token it minted; revoking twice is a no-op that succeeds.

    A limited token only reaches tokens inside its own scope (see ``_within_scope``).
    """
    owner = user or ctx.principal.user_name
    if owner != ctx.principal.user_name:
        require_platform_admin(ctx.principal, "revoke other users' tokens")
    row = ctx.session.scalar(select(ApiToken).join(User).where(User.name == owner, ApiToken.name == name))
    if row is None or not _within_scope(ctx.principal, row):
        raise NotFound(f"token {name!r} of user {owner!r} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        ctx.identity_changed = True
        children = _revoke_descendants(ctx, row)
        ctx.audit("token.revoke", "token", f"{owner}/{name}", details={"children_revoked": children})
    return row


def _revoke_descendants(ctx: CallContext, root: ApiToken) -> list[str]:
    """Revoke every live token minted (directly or not) by ``root``; their owners' names/token names."""
    revoked: list[str] = []
    frontier = [root.id]
    while frontier:
        children = list(ctx.session.scalars(select(ApiToken).where(ApiToken.parent_id.in_(frontier))))
        frontier = [c.id for c in children]
        for child in children:
            if child.revoked_at is None:
                child.revoked_at = root.revoked_at
                revoked.append(f"{child.user.name}/{child.name}")
    return revoked
