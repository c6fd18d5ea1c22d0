"""The append-only audit log: who did what to which object, when, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kosmos.platform.db.models import AuditEvent, Project, Role
from kosmos.platform.errors import Forbidden, NotFound
from kosmos.platform.identity.access import Principal, project_role

Outcome = Literal["success", "denied", "failed"]


@dataclass(frozen=True)
class AuditQuery:
    """Filters for reading the log; all are optional and combine with AND."""

    project: str | None = None
    actor: str | None = None
    object_name: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


ACTION_LENGTH = 128  # audit_events.action


def route_action(method: str, path: str) -> str:
    """The action of a refused route call, ``"GET /api/v1/..."``, cut to fit its column."""
    action = f"{method} {path}"
    return action if len(action) <= ACTION_LENGTH else action[: ACTION_LENGTH - 1] + "…"


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_name: str,
    project: str | None = None,
    outcome: Outcome = "success",
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (it commits or rolls back with the work)."""
    event = AuditEvent(
        actor=actor,
        action=action,
        object_type=object_type,
        object_name=object_name,
        project=project,
        outcome=outcome,
        request_id=request_id,
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event


def query(session: Session, principal: Principal, q: AuditQuery) -> list[AuditEvent]:
    """Events the principal may read: maintainers read their project's, admins all."""
    stmt = select(AuditEvent)
    if q.project is not None:
        project = session.scalar(select(Project).where(Project.name == q.project))
        role = project_role(session, principal, project) if project else None
        if role is None and not principal.platform_admin:
            raise NotFound(f"project {q.project!r} not found")
        if role is not None and role < Role.maintainer:
            raise Forbidden(f"reading the audit log of {q.project!r} needs role maintainer or higher")
        stmt = stmt.where(AuditEvent.project == q.project)
    elif not principal.platform_admin:
        raise Forbidden(
            "only a platform administrator may read the audit log across projects; pass a project"
        )
    if q.actor is not None:
        stmt = stmt.where(AuditEvent.actor == q.actor)
    if q.object_name is not None:
        stmt = stmt.where(AuditEvent.object_name == q.object_name)
    if q.action is not None:
        stmt = stmt.where(AuditEvent.action == q.action)
    if q.since is not None:
        stmt = stmt.where(AuditEvent.at >= q.since)
    if q.until is not None:
        stmt = stmt.where(AuditEvent.at < q.until)
    stmt = stmt.order_by(AuditEvent.id.desc()).limit(q.limit)
    return list(session.scalars(stmt))
