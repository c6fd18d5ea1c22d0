"""The platform's metadata database: models, engine, migrations."""

from kosmos.platform.db.engine import Database, make_engine
from kosmos.platform.db.migrate import current_revision, head_revision, upgrade
from kosmos.platform.db.models import (
    ApiToken,
    AuditEvent,
    Base,
    Project,
    ProjectMember,
    Role,
    Team,
    TeamMember,
    User,
)

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "Database",
    "Project",
    "ProjectMember",
    "Role",
    "Team",
    "TeamMember",
    "User",
    "current_revision",
    "head_revision",
    "make_engine",
    "upgrade",
]
