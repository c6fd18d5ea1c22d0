"""The control plane's REST API."""

from kosmos.platform.api.app import API_PREFIX, MAX_BODY_KEY, create_app
from kosmos.platform.api.deps import Call, CallDep, requires

__all__ = ["API_PREFIX", "MAX_BODY_KEY", "Call", "CallDep", "create_app", "requires"]
