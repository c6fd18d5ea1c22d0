"""The platform's metadata database: models, engine, migrations."""

from kosmos.platform.db.engine import Database, make_engine
from kosmos.platform.db.migrate import current_revisions, head_revisions, upgrade
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
    "current_revisions",
    "head_revisions",
    "make_engine",
    "upgrade",
]
