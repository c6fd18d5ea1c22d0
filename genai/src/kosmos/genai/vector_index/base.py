"""The vector index behind the semantic cache: one small interface, one module per backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

Loader = Callable[[int], tuple[list[int], np.ndarray]]
"""Reads a namespace's entry ids and vectors from durable storage (the metadata database)."""


class VectorIndex(ABC):
    """Nearest neighbours by cosine similarity, per namespace, over unit-length float32 vectors.

    The index only proposes candidates: the cache reads each candidate's entry from the
    metadata database before using it, so a stale index entry costs a lookup, never a
    wrong answer. ``loader`` rebuilds a namespace the index has not seen (after a restart).
    ``url`` locates an external engine; in-process backends ignore it.
    """

    def __init__(self, loader: Loader, dimensions: int, url: str | None = None) -> None:
        self.loader = loader
        self.dimensions = dimensions

    @abstractmethod
    def add(self, namespace: int, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add (or replace) entries."""

    @abstractmethod
    def remove(self, namespace: int, ids: Sequence[int]) -> None:
        """Remove entries; unknown ids are ignored."""

    @abstractmethod
    def drop(self, namespace: int) -> None:
        """Forget a whole namespace."""

    @abstractmethod
    def search(self, namespace: int, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` most similar entries as ``(id, cosine)``, most similar first."""

    @abstractmethod
    def size(self, namespace: int) -> int:
        """How many entries the namespace holds."""

    def check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.shape[1] != self.dimensions:
            raise ValueError(
                f"vectors have {vectors.shape[1]} dimensions; this index holds {self.dimensions}"
            )
        return vectors


class IndexUnavailable(RuntimeError):
    """The index cannot answer now; the gateway answers from the model instead (fails open)."""
