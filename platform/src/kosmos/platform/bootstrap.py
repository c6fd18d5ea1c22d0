"""First start of a platform: migrate, then create an admin, a first team and a starter project.

The starter project is empty: what fills it (the demo's data, models and LLM) is each package's
own demo setup, declared through its plugin (``bootstrap``), never named here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from kosmos.platform.context import CallContext
from kosmos.platform.credentials import save_credentials
from kosmos.platform.db.engine import Database
from kosmos.platform.db.migrate import upgrade
from kosmos.platform.db.models import User
from kosmos.platform.identity import service, token_service
from kosmos.platform.identity.access import Principal
from kosmos.platform.settings import Settings

ADMIN_USER = "admin"
DEMO_TEAM = "risk"
DEMO_PROJECT = "demo"


@dataclass(frozen=True)
class BootstrapResult:
    created: bool
    token: str | None
    """The admin token, only on the start that created it (it is also saved for the CLI)."""


def bootstrap(settings: Settings, database: Database | None = None) -> BootstrapResult:
    """Bring the metadata database to head and seed it on first start; idempotent."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    db = database or Database(settings.database_url)
    try:
        with db.transaction() as session:
            if session.scalar(select(func.count()).select_from(User)):
                return BootstrapResult(created=False, token=None)
            admin = User(name=ADMIN_USER, is_admin=True, disabled=False)
            session.add(admin)
            session.flush()
            ctx = CallContext(session, Principal(user_id=admin.id, user_name=admin.name, is_admin=True))
            ctx.audit("user.create", "user", ADMIN_USER, details={"is_admin": True, "by": "bootstrap"})
            service.create_team(ctx, DEMO_TEAM, description="The first team, created at bootstrap.")
            service.create_project(
                ctx, DEMO_PROJECT, DEMO_TEAM, description="The starter project, where the demo setup runs."
            )
            issued = token_service.issue_token(ctx, "bootstrap", ttl_days=settings.server.token_ttl_days)
        save_credentials(settings.credentials_path, settings.api_url, issued.secret)
        return BootstrapResult(created=True, token=issued.secret)
    finally:
        if database is None:
            db.dispose()
