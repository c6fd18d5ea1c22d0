"""Kosmos features: feature views, point-in-time training sets and online features on Feast.

In a notebook, ``kosmos.features.upload_table(name, frame)``, ``.apply("./my_repo")``,
``.run_pipelines()``, ``.list()``, ``.online(...)``, ``.training_set(...)``, ``.statistics(view)``,
``.drift(view)``, ``.tables()`` and ``.versions()`` work on the session's project.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "apply",
    "drift",
    "list",
    "online",
    "run_pipelines",
    "schedule",
    "statistics",
    "tables",
    "training_set",
    "upload_table",
    "versions",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kosmos.features.fluent import features

        return getattr(features, name)  # names never equal a submodule's (``stats`` is one)
    raise AttributeError(f"module 'kosmos.features' has no attribute {name!r}")
