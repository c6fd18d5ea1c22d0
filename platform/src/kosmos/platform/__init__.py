"""The Kosmos platform core: settings, metadata database, identity, audit, control plane,
the SDK client core and the CLI root.

Other Kosmos packages build on the names exported here.
"""

from kosmos.platform.client import KosmosClient
from kosmos.platform.context import CallContext
from kosmos.platform.db.models import Role
from kosmos.platform.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidInput,
    KosmosError,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)
from kosmos.platform.plugins import EmbeddedService, Plugin
from kosmos.platform.settings import Settings, get_settings

__all__ = [
    "CallContext",
    "Conflict",
    "ConnectionFailed",
    "EmbeddedService",
    "Forbidden",
    "InvalidInput",
    "KosmosClient",
    "KosmosError",
    "NotFound",
    "Plugin",
    "Role",
    "ServiceUnavailable",
    "Settings",
    "Unauthenticated",
    "get_settings",
]
