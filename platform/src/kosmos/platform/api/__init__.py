"""The control plane's REST API."""

from kosmos.platform.api.app import API_PREFIX, create_app
from kosmos.platform.api.deps import Call, CallDep

__all__ = ["API_PREFIX", "Call", "CallDep", "create_app"]
