"""The shared vector index: PostgreSQL with the pgvector extension, one table per namespace.

Every process that points at the same database sees the same entries at once: an entry stored
by one gateway replica is a candidate on every other on its next lookup, and a removal (a flag,
an invalidation, an eviction) is gone for all of them when its transaction commits. Each
namespace is its own table with its own HNSW index, so one tenant's search never scans, or
filters past, another's rows, and dropping a namespace is one ``DROP TABLE``.

The engine may go away: every call is bounded (connect and statement timeouts) and a failure
raises ``IndexUnavailable``, which the cache turns into a miss. After a failure the index
refuses calls for ``RETRY_SECONDS`` instead of waiting on a dead server once per request, then
tries again: it recovers on its own when the server returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from kosmos.genai.vector_index.base import IndexUnavailable, Loader, VectorIndex

if TYPE_CHECKING:
    from kosmos.platform.doctor import Check
    from kosmos.platform.settings import CacheSettings

TIMEOUT_MS = 1000
"""The longest a statement may run before the lookup becomes a miss."""
RETRY_SECONDS = 1.0
"""How long calls are refused (misses) after the engine failed, before it is tried again."""
log = logging.getLogger(__name__)
UNDEFINED_TABLE = "42P01"
LOCK_BASE = 0x6B6F736D00000000  # "kosm": advisory locks of this index, apart from other users'
EF_SEARCH = 64
"""HNSW candidates per search (pgvector's default is 40; more is a better recall for little time)."""


class NamespaceGone(IndexUnavailable):
    """The namespace's table was dropped (by another process) during the call."""


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(map(repr, vector.tolist())) + "]"


class PgVectorIndex(VectorIndex):
    """Cosine search in PostgreSQL + pgvector (HNSW over inner product of unit vectors).

    ``url`` is a SQLAlchemy URL of a PostgreSQL database where the ``vector`` extension exists
    or may be created. A namespace the index has never held is filled once from ``loader``
    (the metadata database), so switching from the embedded index loses nothing.
    """

    def __init__(self, loader: Loader, dimensions: int, url: str | None = None) -> None:
        super().__init__(loader, dimensions)
        if not url:
            raise ValueError("the pgvector index needs gateway.cache.index_url (a PostgreSQL URL)")
        parsed = make_url(url)
        if not parsed.drivername.startswith("postgresql"):
            raise ValueError(f"the pgvector index needs a PostgreSQL URL, not {parsed.drivername}")
        self.engine: Engine = create_engine(
            parsed.set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,
            pool_size=4,
            max_overflow=4,
            pool_timeout=TIMEOUT_MS / 1000,
            connect_args={
                "connect_timeout": 2,
                "options": f"-c statement_timeout={TIMEOUT_MS} -c hnsw.ef_search={EF_SEARCH}",
            },
        )
        self._known: set[int] = set()
        self._filling: set[int] = set()
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._extension = False

    @staticmethod
    def _table(namespace: int) -> str:
        return f"kosmos_cache_vectors_{int(namespace)}"

    def _call(self, namespace: int, work: Any) -> Any:
        """Run ``work(connection)`` in one transaction; an engine failure is ``IndexUnavailable``."""
        if time.monotonic() < self._down_until:
            raise IndexUnavailable("the pgvector index failed less than a second ago")
        try:
            with self.engine.begin() as connection:
                return work(connection)
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE:  # another process dropped it
                with self._lock:
                    self._known.discard(namespace)
                raise NamespaceGone(namespace) from exc
            raise IndexUnavailable(f"pgvector index: {exc.orig}") from exc
        except (SQLAlchemyError, OSError) as exc:
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                self.engine.dispose()
            self._down_until = time.monotonic() + RETRY_SECONDS
            raise IndexUnavailable(f"pgvector index: {type(exc).__name__}") from exc

    def _ensure(self, connection: Any, namespace: int, create: bool = True) -> bool:
        """Whether the namespace's table exists, making it when it can be made at once.

        A namespace the metadata database holds entries for (a switch from the embedded index,
        a lost index database) is filled in a background thread, never on a request: until it is
        done, lookups are misses and stores are skipped. An empty one is made on its first store
        (``create``); a lookup never makes one, so a namespace dropped meanwhile leaves no table."""
        if namespace in self._known:
            return True
        if namespace in self._filling:  # not the loader's full read again on every lookup meanwhile
            if create:
                raise IndexUnavailable(f"namespace {namespace} is being filled from the metadata database")
            return False
        if not self._extension:
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            self._extension = True
        if connection.scalar(text("SELECT to_regclass(:t)"), {"t": self._table(namespace)}) is not None:
            with self._lock:
                self._known.add(namespace)
            return True
        ids, _ = self.loader(namespace)
        if ids:
            self._fill_later(namespace)
            if create:
                raise IndexUnavailable(f"namespace {namespace} is being filled from the metadata database")
            return False
        if not create:
            return False
        self._create(connection, namespace, [], np.zeros((0, self.dimensions), dtype=np.float32))
        return True

    def _create(self, connection: Any, namespace: int, ids: Sequence[int], vectors: np.ndarray) -> None:
        table = self._table(namespace)
        lock = {"key": LOCK_BASE + namespace}  # two processes never make the same table at once
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), lock)
        if connection.scalar(text("SELECT to_regclass(:t)"), {"t": table}) is None:
            connection.execute(
                text(f"CREATE TABLE {table} (id bigint PRIMARY KEY, embedding vector({self.dimensions}))")
            )
            if len(ids):  # before the index: one HNSW build is much faster than one insert per row
                self._insert(connection, table, ids, self.check(vectors))
            connection.execute(
                text(f"CREATE INDEX {table}_hnsw ON {table} USING hnsw (embedding vector_ip_ops)")
            )
        with self._lock:
            self._known.add(namespace)

    def fill(self, namespace: int) -> int:
        """Make and fill the namespace's table from the metadata database now (blocking; no
        statement timeout). Returns the entries it holds."""
        ids, vectors = self.loader(namespace)
        with self.engine.begin() as connection:
            connection.execute(text("SET LOCAL statement_timeout = 0"))
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            self._create(connection, namespace, ids, vectors)
        return self.size(namespace)

    def _fill_later(self, namespace: int) -> None:
        with self._lock:
            if namespace in self._filling:
                return
            self._filling.add(namespace)

        def run() -> None:
            try:
                self.fill(namespace)
            except Exception as exc:  # the next lookup tries again
                log.warning("could not fill pgvector namespace %s: %s", namespace, type(exc).__name__)
            finally:
                with self._lock:
                    self._filling.discard(namespace)

        threading.Thread(target=run, name=f"pgvector-fill-{namespace}", daemon=True).start()

    @staticmethod
    def _insert(connection: Any, table: str, ids: Sequence[int], vectors: np.ndarray) -> None:
        rows = [{"id": int(i), "v": _literal(v)} for i, v in zip(ids, vectors, strict=True)]
        connection.execute(
            text(
                f"INSERT INTO {table} (id, embedding) VALUES (:id, CAST(:v AS vector)) "
                "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding"
            ),
            rows,
        )

    def add(self, namespace: int, ids: Sequence[int], vectors: np.ndarray) -> None:
        vectors = self.check(vectors)

        def work(connection: Any) -> None:
            self._ensure(connection, namespace)
            self._insert(connection, self._table(namespace), ids, vectors)

        self._call(namespace, work)

    def remove(self, namespace: int, ids: Sequence[int]) -> None:
        if not ids:
            return

        def work(connection: Any) -> None:
            connection.execute(
                text(f"DELETE FROM {self._table(namespace)} WHERE id = ANY(:ids)"),
                {"ids": [int(i) for i in ids]},
            )

        with contextlib.suppress(NamespaceGone):
            self._call(namespace, work)

    def drop(self, namespace: int) -> None:
        self._call(namespace, lambda c: c.execute(text(f"DROP TABLE IF EXISTS {self._table(namespace)}")))
        with self._lock:
            self._known.discard(namespace)

    def search(self, namespace: int, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        query = _literal(self.check(vector)[0])

        def work(connection: Any) -> list[tuple[int, float]]:
            if not self._ensure(connection, namespace, create=False):
                return []
            rows = connection.execute(
                text(
                    f"SELECT id, -(embedding <#> CAST(:q AS vector)) FROM {self._table(namespace)} "
                    "ORDER BY embedding <#> CAST(:q AS vector) LIMIT :k"
                ),
                {"q": query, "k": k},
            ).all()
            return [(int(i), float(s)) for i, s in rows]

        try:
            return self._call(namespace, work)
        except NamespaceGone:
            return []

    def size(self, namespace: int) -> int:
        def work(connection: Any) -> int:
            if not self._ensure(connection, namespace, create=False):
                return 0
            return int(connection.scalar(text(f"SELECT count(*) FROM {self._table(namespace)}")) or 0)

        try:
            return self._call(namespace, work)
        except NamespaceGone:
            return 0


def doctor_checks(config: CacheSettings, database_url: str) -> list[Check]:
    """`kosmos doctor`: the shared index answers and has the ``vector`` extension (no check for
    the in-process index)."""
    from kosmos.genai.semantic_cache import check_config
    from kosmos.platform.doctor import Check

    if config.index != "pgvector":
        return []
    service = "semantic cache index (pgvector)"
    try:
        url = check_config(config, database_url)
    except ValueError as exc:
        return [Check(service, "", False, str(exc))]
    engine = create_engine(url, connect_args={"connect_timeout": 2}, poolclass=NullPool)
    target = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            installed = connection.scalar(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            )
            available = connection.scalar(
                text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
            )
    except Exception as exc:
        return [Check(service, target, False, f"cannot connect: {type(exc).__name__}")]
    finally:
        engine.dispose()
    if installed:
        return [Check(service, target, True, f"pgvector {installed}")]
    if available:  # the first store creates it (CREATE EXTENSION needs the right to do so)
        return [Check(service, target, True, f"pgvector {available} available, created on first use")]
    return [Check(service, target, False, "this PostgreSQL has no pgvector extension: install it there")]
