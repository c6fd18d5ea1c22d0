"""The LLM engines, by name: one registry fed by the ``kosmos.genai.engines`` entry points.

A package adds an engine by declaring ``name = "module:Class"`` in that group; the class
is an :class:`~kosmos.genai.engines.base.InferenceEngine`. Nothing outside this registry
branches on engine names.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kosmos.genai.engines.base import InferenceEngine
    from kosmos.genai.spec import LLMSpec
    from kosmos.platform.settings import Settings

ENTRY_POINT_GROUP = "kosmos.genai.engines"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every registered engine name, sorted."""
    return sorted(_entry_points())


def engine_class(name: str) -> type[InferenceEngine]:
    """The engine registered as ``name``; a ValueError listing the valid names otherwise."""
    import importlib

    found = _entry_points()
    if name not in found:
        raise ValueError(f"unknown engine {name!r}; valid: auto, {', '.join(sorted(found))}")
    module, attr = found[name].split(":")
    return getattr(importlib.import_module(module), attr)


def cluster_gpus() -> float:
    """GPUs of the Ray cluster this process is connected to (outside Ray: this machine's)."""
    import ray

    if ray.is_initialized():
        return float(ray.cluster_resources().get("GPU", 0))
    import torch

    return float(torch.cuda.device_count())


def resolve(
    spec: LLMSpec, settings: Settings | None = None, gpus: float | None = None
) -> type[InferenceEngine]:
    """The engine ``spec`` runs on: its own, or under ``auto`` the highest-ranked available one."""
    gpus = cluster_gpus() if gpus is None else gpus
    if spec.engine != "auto":
        chosen = engine_class(spec.engine)
        reason = chosen.unavailable(spec, gpus, settings)
        if reason:
            raise ValueError(f"engine: {spec.engine} cannot run here: {reason}")
        return chosen
    ranked = sorted(
        (
            cls
            for cls in map(engine_class, names())
            if cls.auto_rank is not None and not cls.unavailable(spec, gpus, settings)
        ),
        key=lambda cls: -(cls.auto_rank or 0),
    )
    if not ranked:
        raise ValueError(f"engine: auto found no engine that can run here (registered: {', '.join(names())})")
    return ranked[0]
