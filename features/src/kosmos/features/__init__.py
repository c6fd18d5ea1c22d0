"""Kosmos features: feature views, point-in-time training sets and online features on Feast.

In a notebook, ``kosmos.features.list()``, ``.online(...)``, ``.training_set(...)``,
``.run_pipelines()``, ``.statistics(view)`` and ``.drift(view)`` work on the session's project.
"""

from __future__ import annotations

from typing import Any

__all__ = ["drift", "list", "online", "run_pipelines", "statistics", "training_set"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kosmos.features.fluent import features

        return getattr(features, name)  # names never equal a submodule's (``stats`` is one)
    raise AttributeError(f"module 'kosmos.features' has no attribute {name!r}")
