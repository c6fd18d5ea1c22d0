"""Kosmos training: DVC-versioned datasets, tracked MLflow runs, the model registry with lineage.

``run`` and ``tracked`` import MLflow on first use, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainingRun", "run", "tracked"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kosmos.training import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'kosmos.training' has no attribute {name!r}")
