"""The Kosmos platform core: settings, metadata database, identity, audit, control plane,
the SDK client core and the CLI root.

Other Kosmos packages build on the names exported here. They load on first use, so a
process that needs only the settings (a model replica, a Ray task) does not import the
client, the database layer and the web framework too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        UnknownEntity,
    )
    from kosmos.platform.plugins import EmbeddedService, Plugin
    from kosmos.platform.settings import Settings, get_settings

_ERRORS = "kosmos.platform.errors"
_EXPORTS = {
    "CallContext": "kosmos.platform.context",
    "Conflict": _ERRORS,
    "ConnectionFailed": _ERRORS,
    "EmbeddedService": "kosmos.platform.plugins",
    "Forbidden": _ERRORS,
    "InvalidInput": _ERRORS,
    "KosmosClient": "kosmos.platform.client",
    "KosmosError": _ERRORS,
    "NotFound": _ERRORS,
    "Plugin": "kosmos.platform.plugins",
    "Role": "kosmos.platform.db.models",
    "ServiceUnavailable": _ERRORS,
    "Settings": "kosmos.platform.settings",
    "Unauthenticated": _ERRORS,
    "UnknownEntity": _ERRORS,
    "get_settings": "kosmos.platform.settings",
}
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
    "UnknownEntity",
    "get_settings",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:  # a submodule used as an attribute, as the eager imports used to allow
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
