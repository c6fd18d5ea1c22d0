"""Kosmos: an end-to-end ML and GenAI platform.

In a notebook::

    import kosmos

    kosmos.login(url="http://127.0.0.1:8080", token="kos_...")  # or the saved `kosmos login`
    kosmos.init(project="my-project")
    kosmos.models.list()
    kosmos.deployments.status("my-deployment")

The platform package owns this namespace package; the other Kosmos packages
(features, training, deployment, genai, ui) join it through ``__path__`` and add
their notebook namespaces (``kosmos.models``, ``kosmos.llm``, ...) as plugins.
"""

from pkgutil import extend_path
from typing import Any

__path__ = extend_path(__path__, __name__)

_FLUENT = ("login", "init", "current", "Session", "Table", "Record")
_IDENTITY = ("projects", "teams", "users", "tokens")
_ERRORS = (
    "KosmosError",
    "Unauthenticated",
    "Forbidden",
    "NotFound",
    "InvalidInput",
    "Conflict",
    "ServiceUnavailable",
    "ConnectionFailed",
    "UnknownEntity",
)


def __getattr__(name: str) -> Any:
    import importlib

    if name in _FLUENT:
        from kosmos.platform import fluent

        return getattr(fluent, name)
    if name in _IDENTITY:
        from kosmos.platform.identity import sdk

        return getattr(sdk, name)
    if name in _ERRORS:
        from kosmos.platform import errors

        return getattr(errors, name)
    from kosmos.platform.plugins import sdk_namespaces

    target = sdk_namespaces().get(name)
    if target is None:
        raise AttributeError(f"module 'kosmos' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr) if attr else importlib.import_module(module)
    return value


def __dir__() -> list[str]:
    from kosmos.platform.plugins import sdk_namespaces

    return sorted({*globals(), *_FLUENT, *_IDENTITY, *_ERRORS, *sdk_namespaces()})
