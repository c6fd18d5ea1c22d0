"""Kosmos training: DVC-versioned datasets, tracked MLflow runs, the model registry with lineage.

``run`` and ``tracked`` import MLflow on first use, so importing this package stays cheap.
``run(project, experiment)`` names the project; in a notebook ``kosmos.training.start(experiment)``
opens the run in the session's project (``kosmos.init``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "TrainingRun",
    "compare",
    "get_run",
    "image",
    "images",
    "metric_history",
    "run",
    "runs",
    "start",
    "tracked",
]


def __getattr__(name: str) -> Any:
    if name in ("TrainingRun", "run", "tracked"):
        from kosmos.training import tracking

        return getattr(tracking, name)
    if name in __all__:  # the notebook calls: on the session's project
        from kosmos.training.fluent import training

        return getattr(training, name)
    raise AttributeError(f"module 'kosmos.training' has no attribute {name!r}")
