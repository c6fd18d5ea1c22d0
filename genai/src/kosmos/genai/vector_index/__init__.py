"""Vector index backends for the semantic cache, chosen by ``gateway.cache.index`` in settings."""

from __future__ import annotations

import importlib

from kosmos.genai.vector_index.base import IndexUnavailable, Loader, VectorIndex

INDEXES = {
    "memory": "kosmos.genai.vector_index.memory:MemoryIndex",
    "pgvector": "kosmos.genai.vector_index.pgvector:PgVectorIndex",
}
"""Backends by name; the first is the embedded default."""


def index_class(name: str) -> type[VectorIndex]:
    """The backend registered as ``name`` (imported only when chosen)."""
    if name not in INDEXES:
        raise ValueError(f"unknown vector index {name!r}; valid: {', '.join(sorted(INDEXES))}")
    module, attr = INDEXES[name].split(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["INDEXES", "IndexUnavailable", "Loader", "VectorIndex", "index_class"]
