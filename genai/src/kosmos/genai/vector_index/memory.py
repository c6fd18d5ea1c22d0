"""The embedded vector index: exact search over a float32 matrix per namespace, in process.

Entries are durable in the metadata database (``cache_entries.vector``); the index is
rebuilt from there the first time a namespace is searched after a start.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from kosmos.genai.vector_index.base import Loader, VectorIndex

EXACT_UP_TO = 20_000
"""Namespaces up to this size are searched exhaustively; larger ones through an IVF partition."""
PROBES = 24
MAX_ROWS = 6_000
"""At most this many rows are scored per search above EXACT_UP_TO: the nearest cells first. Real
questions crowd a few cells (paraphrases of one question land together), and scoring every row
of 24 crowded cells cost 31 ms p99 at 100k (bench/RESULTS.md)."""


class _Namespace:
    def __init__(self, dimensions: int) -> None:
        self.matrix = np.zeros((64, dimensions), dtype=np.float32)
        self.ids = np.zeros(64, dtype=np.int64)
        self.cells = np.zeros(64, dtype=np.int32)
        self.rows: dict[int, int] = {}
        self.centroids: np.ndarray | None = None
        self.sizes = np.zeros(0, dtype=np.int64)
        self.trained_at = 0

    def train(self) -> None:
        """k-means cells (a few Lloyd steps on a sample), and every row's cell."""
        n = len(self.rows)
        rng = np.random.default_rng(n)
        k = int(np.sqrt(n) * 2)
        sample = self.matrix[rng.choice(n, min(n, 40 * k), replace=False)]
        centroids = sample[rng.choice(len(sample), k, replace=False)]
        for _ in range(4):
            nearest = np.argmax(sample @ centroids.T, axis=1)
            for c in range(k):
                members = sample[nearest == c]
                if len(members):
                    mean = members.mean(axis=0)
                    centroids[c] = mean / (np.linalg.norm(mean) or 1.0)
        self.centroids = centroids
        for start in range(0, n, 20_000):
            block = self.matrix[start : min(n, start + 20_000)]
            self.cells[start : start + len(block)] = np.argmax(block @ centroids.T, axis=1)
        self.sizes = np.bincount(self.cells[:n], minlength=k).astype(np.int64)
        self.trained_at = n

    def candidates(self, query: np.ndarray) -> np.ndarray:
        """Row numbers to score: all of them, or those in the cells nearest the query."""
        n = len(self.rows)
        if n <= EXACT_UP_TO:
            return np.arange(n)
        if self.centroids is None or n > 2 * self.trained_at:
            self.train()
        assert self.centroids is not None
        similarity = self.centroids @ query
        nearest = np.argpartition(-similarity, PROBES)[:PROBES]
        nearest = nearest[np.argsort(-similarity[nearest])]
        within = np.cumsum(self.sizes[nearest]) <= MAX_ROWS
        probe = nearest[: max(1, int(within.sum()))]  # the nearest cell always, then while they fit
        return np.flatnonzero(np.isin(self.cells[:n], probe))

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        for id_, vector in zip(ids, vectors, strict=True):
            row = self.rows.get(id_)
            replaced = row is not None
            if row is None:
                row = len(self.rows)
                if row == len(self.ids):  # grow by doubling
                    self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
                    self.ids = np.concatenate([self.ids, np.zeros_like(self.ids)])
                    self.cells = np.concatenate([self.cells, np.zeros_like(self.cells)])
                self.rows[id_] = row
                self.ids[row] = id_
            if self.centroids is not None:
                if replaced:  # it leaves its old cell
                    self.sizes[self.cells[row]] -= 1
                self.cells[row] = int(np.argmax(self.centroids @ vector))
                self.sizes[self.cells[row]] += 1
            self.matrix[row] = vector

    def remove(self, ids: Sequence[int]) -> None:
        for id_ in ids:
            row = self.rows.pop(id_, None)
            if row is None:
                continue
            if self.centroids is not None:
                self.sizes[self.cells[row]] -= 1
            last = len(self.rows)  # move the last row into the hole
            if row != last:
                moved = int(self.ids[last])
                self.matrix[row], self.ids[row] = self.matrix[last], moved
                self.cells[row] = self.cells[last]
                self.rows[moved] = row


class MemoryIndex(VectorIndex):
    """Cosine search with numpy: exact up to ``EXACT_UP_TO`` entries per namespace; above, an
    inverted-file partition (k-means cells, the ``PROBES`` nearest cells scored exactly), which
    may miss a neighbour (a cache miss, never a wrong answer) and keeps 100k entries near 3 ms."""

    def __init__(self, loader: Loader, dimensions: int, url: str | None = None) -> None:
        super().__init__(loader, dimensions)
        self._spaces: dict[int, _Namespace] = {}
        self._lock = threading.RLock()

    def _space(self, namespace: int) -> _Namespace:
        space = self._spaces.get(namespace)
        if space is None:
            ids, vectors = self.loader(namespace)
            space = _Namespace(self.dimensions)
            if ids:
                space.add(ids, self.check(vectors))
            self._spaces[namespace] = space
        return space

    def add(self, namespace: int, ids: Sequence[int], vectors: np.ndarray) -> None:
        vectors = self.check(vectors)
        with self._lock:
            self._space(namespace).add(list(ids), vectors)

    def remove(self, namespace: int, ids: Sequence[int]) -> None:
        with self._lock:
            if namespace in self._spaces:
                self._spaces[namespace].remove(ids)

    def drop(self, namespace: int) -> None:
        with self._lock:
            self._spaces.pop(namespace, None)

    def search(self, namespace: int, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        query = self.check(vector)[0]
        with self._lock:
            space = self._space(namespace)
            n = len(space.rows)
            if n == 0:
                return []
            rows = space.candidates(query)
            if len(rows) == n:
                scores, ids = space.matrix[:n] @ query, space.ids[:n]
            else:
                scores, ids = space.matrix[rows] @ query, space.ids[rows]
            top = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
            top = top[np.argsort(-scores[top])]
            return [(int(ids[i]), float(scores[i])) for i in top]

    def size(self, namespace: int) -> int:
        with self._lock:
            return len(self._space(namespace).rows)
