"""The context every service-layer call runs in: one transaction, one principal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kosmos.platform import audit
from kosmos.platform.db.models import Project, Role
from kosmos.platform.errors import Conflict
from kosmos.platform.identity.access import Principal, require_project


@dataclass
class CallContext:
    """A principal acting inside one database transaction.

    REST routes, the CLI and in-process SDK calls all build one of these, so the
    same authorization and audit rules apply whichever door a call came through.
    """

    session: Session
    principal: Principal
    request_id: str | None = None
    identity_changed: bool = False
    """Set by changes that can narrow someone's access, so cached access checks are dropped."""

    def project(self, name: str, minimum: Role) -> Project:
        """The project ``name``, or NotFound/Forbidden when the principal lacks ``minimum``."""
        return require_project(self.session, self.principal, name, minimum)

    def insert(self, obj: object, what: str) -> None:
        """Add ``obj`` in a savepoint, so a duplicate is a clean 409 and the transaction lives on."""
        try:
            with self.session.begin_nested():
                self.session.add(obj)
        except IntegrityError:
            raise Conflict(f"{what} already exists") from None

    def audit(
        self,
        action: str,
        object_type: str,
        object_name: str,
        *,
        project: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a successful action in this transaction."""
        audit.record(
            self.session,
            actor=self.principal.user_name,
            action=action,
            object_type=object_type,
            object_name=object_name,
            project=project,
            request_id=self.request_id,
            details=details,
        )
