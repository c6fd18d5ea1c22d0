"""REST route for reading the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from kosmos.platform import audit
from kosmos.platform.api.deps import CallDep
from kosmos.platform.api.schemas import AuditEventOut
from kosmos.platform.errors import InvalidInput

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=list[AuditEventOut])
def read_audit(
    call: CallDep,
    project: str | None = None,
    actor: str | None = None,
    object: Annotated[str | None, Query(alias="object")] = None,  # noqa: A002 - the REST name
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventOut]:
    """Audit events, newest first, filtered by project, actor, object, action and time."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput.field(name, "needs a timezone, e.g. 2026-01-01T00:00:00Z")
    q = audit.AuditQuery(
        project=project, actor=actor, object_name=object, action=action, since=since, until=until, limit=limit
    )
    with call.tx() as ctx:
        return [
            AuditEventOut.model_validate(e, from_attributes=True)
            for e in audit.query(ctx.session, ctx.principal, q)
        ]
