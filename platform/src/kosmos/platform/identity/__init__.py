"""Identity and access: users, teams, projects, roles and API tokens."""

from kosmos.platform.identity.access import Principal, authenticate, project_role, require_project
from kosmos.platform.identity.names import Name, check_name

__all__ = ["Name", "Principal", "authenticate", "check_name", "project_role", "require_project"]
