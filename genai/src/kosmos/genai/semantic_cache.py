"""The semantic cache: answers to questions that were already asked, within one hard partition.

A partition (namespace) is one project, model and model version, prompt version and
system prompt; nothing is ever looked up across them, so one tenant never sees
another's answers. Within a namespace a question is a hit when a cached question is
at least ``threshold`` similar (cosine of all-MiniLM-L6-v2 embeddings) *and* passes the
false-hit guard (``cache_guard``). Entries are durable in the metadata database; the
vector index only proposes candidates, and every candidate is re-read and verified
(namespace, expiry, checksum) before it is served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, select, update

from kosmos.genai.cache_guard import meaning_differs
from kosmos.genai.models_db import CacheEntry, CacheEvent, CacheNamespace
from kosmos.genai.vector_index import VectorIndex, index_class
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import CacheSettings

log = logging.getLogger(__name__)
DIMENSIONS = 384
CANDIDATES = 5  # how many neighbours the guard may look at
NAMESPACE_SECONDS = 5.0  # how long a process trusts the namespace row it read
ANSWERS_AGREE = 0.85  # cosine of two answers' embeddings above which an audit counts them as one
RAISE_BY = 0.005  # how far past a disagreeing question's similarity an entry's own bar goes
THRESHOLD_STEP = 0.05
"""How much a namespace's threshold goes up when its audits put false hits above the project's bound."""
MAX_THRESHOLD = 0.99
MIN_AUDITS = 10
"""Audits at the threshold in force before it may be raised: one comparison can be wrong (two
wordings of one answer may read as a disagreement)."""
FLUSH_SECONDS = 5.0  # hits are written this often (they order eviction; nothing else waits on them)


@dataclass(frozen=True)
class Partition:
    """What must match for a cached answer to be usable at all."""

    project_id: int
    model: str
    model_version: str
    prompt: str | None = None
    prompt_version: int | None = None
    system: str = ""

    @property
    def slot(self) -> str:
        """The partition without versions: a version move keeps the slot and changes the key."""
        parts = [str(self.project_id), self.model, self.prompt or "", self.system]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    @property
    def key(self) -> str:
        parts = [self.slot, self.model_version, str(self.prompt_version)]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@dataclass
class Namespace:
    id: int
    threshold: float
    invalidated: int = 0
    """Entries dropped because the model or prompt version moved since the last call."""


@dataclass
class Lookup:
    """The outcome of a lookup: the entry served, or why none was."""

    entry_id: int | None = None
    answer: dict[str, Any] | None = None
    similarity: float | None = None
    matched: str | None = None
    rejected: list[str] = field(default_factory=list)
    """Candidates above the threshold the guard refused, with its reason."""

    @property
    def hit(self) -> bool:
        return self.entry_id is not None


def check_config(config: CacheSettings, database_url: str) -> str:
    """Refuse a cache configuration that cannot work, naming the setting: an unknown index, or a
    pgvector index without a PostgreSQL database to live in. Returns the index's URL in force
    (``gateway.cache.index_url``, else the metadata database)."""
    index_class(config.index)  # ValueError listing the valid names
    url = config.index_url.get_secret_value() if config.index_url else database_url
    if config.index == "pgvector" and not url.startswith("postgresql"):
        raise ValueError(
            "gateway.cache.index is pgvector but neither gateway.cache.index_url nor the metadata "
            f"database is PostgreSQL ({url.split(':', 1)[0]}); set gateway.cache.index_url"
        )
    return url


def _checksum(vector: bytes, answer: dict[str, Any]) -> str:
    return hashlib.sha256(vector + json.dumps(answer, sort_keys=True).encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


class SemanticCache:
    """Lookups, stores and invalidation, over the metadata database and a vector index."""

    def __init__(
        self,
        database: Database,
        config: CacheSettings,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """``config.index_url`` unset means the metadata database (for an external index)."""
        self.database = database
        self.cache_dir = cache_dir
        self.config = config
        self._embed = embed
        url = check_config(config, database.url)
        self.index: VectorIndex = index_class(config.index)(self._load, DIMENSIONS, url=url)
        self._lock = threading.Lock()
        self._touched: dict[int, tuple[int, datetime]] = {}
        self._known: dict[str, tuple[float, Namespace]] = {}
        self._flusher: threading.Thread | None = None
        self.verifier: Any = None
        """A ``kosmos.genai.verifier.Verifier`` asked about each candidate, when one is configured."""
        self.verifier_error: str | None = None
        """Why the configured verifier could not be loaded: every lookup is then a miss."""

    def embed(self, text: str) -> np.ndarray:
        """The unit-length embedding of ``text``."""
        if self._embed is None:
            from kosmos.genai.embeddings import local_encoder

            self._embed = local_encoder(self.cache_dir)
        return np.asarray(self._embed([text]), dtype=np.float32)[0]

    def _load(self, namespace: int) -> tuple[list[int], np.ndarray]:
        with self.database.transaction() as session:
            rows = session.execute(
                select(CacheEntry.id, CacheEntry.vector).where(
                    CacheEntry.namespace_id == namespace, CacheEntry.expires_at > _now()
                )
            ).all()
        vectors = [np.frombuffer(v, dtype=np.float32) for _, v in rows]
        good = [(i, v) for (i, _), v in zip(rows, vectors, strict=True) if v.shape == (DIMENSIONS,)]
        if not good:
            return [], np.zeros((0, DIMENSIONS), dtype=np.float32)
        return [i for i, _ in good], np.stack([v for _, v in good])

    # -- namespaces -----------------------------------------------------------------
    def namespace(
        self, partition: Partition, threshold: float | None = None, actor: str = "gateway"
    ) -> Namespace:
        """The namespace of ``partition``, made on first use. Entries of the same slot made for an
        older model or prompt version are dropped (the alias moved): they can never be served."""
        known = self._known.get(partition.key)
        if known is not None and known[0] > time.monotonic():  # no database read per request
            return Namespace(known[1].id, known[1].threshold)
        with self._lock, self.database.transaction() as session:
            current = session.scalar(select(CacheNamespace).where(CacheNamespace.key == partition.key))
            if current is not None:
                return self._remember(partition.key, Namespace(current.id, current.threshold))
            stale = session.scalars(
                select(CacheNamespace).where(
                    CacheNamespace.project_id == partition.project_id, CacheNamespace.slot == partition.slot
                )
            ).all()
            carried = stale[-1].threshold if stale else None
            dropped = 0
            for old in stale:
                dropped += self._drop(session, old, "invalidated", actor, self._moved(old, partition))
            row = CacheNamespace(
                project_id=partition.project_id,
                key=partition.key,
                slot=partition.slot,
                model=partition.model,
                model_version=partition.model_version,
                prompt=partition.prompt,
                prompt_version=partition.prompt_version,
                threshold=threshold or carried or self.config.threshold,
            )
            session.add(row)
            session.flush()
            return self._remember(partition.key, Namespace(row.id, row.threshold, dropped))

    def _remember(self, key: str, namespace: Namespace) -> Namespace:
        """Keep a namespace for ``NAMESPACE_SECONDS``. Another process's threshold change shows after
        that; its invalidation is safe at once (a dropped namespace has no entries to serve)."""
        self._known[key] = (
            time.monotonic() + NAMESPACE_SECONDS,
            Namespace(namespace.id, namespace.threshold),
        )
        return namespace

    @staticmethod
    def _moved(old: CacheNamespace, new: Partition) -> str:
        if old.model_version != new.model_version:
            return f"{new.model} moved from version {old.model_version} to {new.model_version}"
        return f"prompt {new.prompt} moved from version {old.prompt_version} to {new.prompt_version}"

    def _drop(self, session: Any, ns: CacheNamespace, kind: str, actor: str, reason: str) -> int:
        count = session.scalar(select(func.count()).where(CacheEntry.namespace_id == ns.id)) or 0
        session.execute(delete(CacheEntry).where(CacheEntry.namespace_id == ns.id))
        session.delete(ns)
        session.add(
            CacheEvent(
                project_id=ns.project_id,
                kind=kind,
                entries=count,
                namespace_id=ns.id,
                model=ns.model,
                actor=actor,
                reason=reason,
            )
        )
        self.index.drop(ns.id)
        self._known.pop(ns.key, None)
        return count

    # -- lookups and stores ---------------------------------------------------------
    def lookup(self, namespace: Namespace, query: str, vector: np.ndarray, guard: bool = True) -> Lookup:
        """The best verified entry for ``query``, or a miss that says which candidates were refused."""
        result = Lookup()
        candidates = [
            (i, s) for i, s in self.index.search(namespace.id, vector, CANDIDATES) if s >= namespace.threshold
        ]
        if not candidates:
            return result
        now = _now()
        ids = [i for i, _ in candidates]
        with self.database.transaction() as session:
            rows = {
                r.id: r
                # by primary key only: with the namespace in the WHERE too, SQLite walked the
                # namespace's index (every entry of it: 10 ms at 100k) instead of the key
                for r in session.scalars(select(CacheEntry).where(CacheEntry.id.in_(ids)))
                if r.namespace_id == namespace.id
            }
            gone: list[int] = []
            for entry_id, similarity in candidates:
                row = rows.get(entry_id)
                if row is None or row.expires_at <= now:
                    gone.append(entry_id)
                    continue
                if _checksum(row.vector, row.answer) != row.checksum or "text" not in row.answer:
                    log.warning("cache entry %s is corrupted; dropped", entry_id)
                    gone.append(entry_id)
                    session.delete(row)
                    continue
                why = meaning_differs(query, row.query) if guard else None
                if why is None and row.min_similarity is not None and similarity < row.min_similarity:
                    why = f"entry {entry_id} needs {row.min_similarity:.3f} after a disagreeing audit"
                if why is None:
                    why = self._unverified(query, vector, row)
                if why:
                    result.rejected.append(why)
                    continue
                self._touch(entry_id, now)
                result.entry_id, result.answer = entry_id, row.answer
                result.similarity, result.matched = similarity, row.query
                break
        if gone:
            self.index.remove(namespace.id, gone)
        return result

    def _unverified(self, query: str, vector: np.ndarray, row: CacheEntry) -> str | None:
        """Why the verifier refuses the candidate (fails closed: a verifier that cannot answer is a miss)."""
        if self.verifier_error:
            return "the cache verifier is unavailable"
        if self.verifier is None:
            return None
        try:
            cached = np.frombuffer(row.vector, dtype=np.float32)
            ok, probability = self.verifier.accepts(row.query, query, cached, vector)
        except Exception as exc:
            log.warning("the cache verifier failed (%s); a miss", type(exc).__name__)
            return "the cache verifier failed"
        return None if ok else f"the verifier gave {probability:.2f}"

    def agrees(self, fresh: str, cached: str) -> bool:
        """Whether the model's fresh answer says what the cached one said (an audit's verdict):
        the same words, or close embeddings (``ANSWERS_AGREE``) with no differing number, negation
        or entity. Approximate: two wordings of one answer may read as a disagreement."""
        if " ".join(fresh.lower().split()) == " ".join(cached.lower().split()):
            return True
        if meaning_differs(fresh, cached):
            return False
        similarity = float(self.embed(fresh) @ self.embed(cached))
        return similarity >= ANSWERS_AGREE

    def _touch(self, entry_id: int, when: datetime) -> None:
        """Count a hit. Hits are written in batches by a background thread, off the hit path."""
        with self._lock:
            count, _ = self._touched.get(entry_id, (0, when))
            self._touched[entry_id] = (count + 1, when)
            if self._flusher is None or not self._flusher.is_alive():
                self._flusher = threading.Thread(target=self._flush_loop, name="cache-hits", daemon=True)
                self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            if not self.flush_hits():
                return

    def flush_hits(self) -> int:
        """Write the hits counted since the last flush; returns how many entries were touched."""
        with self._lock:
            touched, self._touched = self._touched, {}
        if not touched:
            return 0
        try:
            table = CacheEntry.__table__
            statement = (
                update(table)
                .where(table.c.id == bindparam("entry"))
                .values(hits=table.c.hits + bindparam("count"), last_used_at=bindparam("when"))
            )
            rows = [{"entry": e, "count": c, "when": w} for e, (c, w) in touched.items()]
            with self.database.transaction() as session:
                session.connection().execute(statement, rows)  # one executemany
        except Exception as exc:  # counters only: never fail a request over them
            log.warning("could not record cache hits: %s", type(exc).__name__)
        return len(touched)

    def store(
        self,
        namespace: Namespace,
        query: str,
        vector: np.ndarray,
        answer: dict[str, Any],
        ttl_seconds: int | None = None,
        max_entries: int | None = None,
    ) -> int:
        """Cache ``answer`` (text, finish reason, usage) for ``query``; evicts the least recently
        used entries beyond ``max_entries``. Returns the entry's id."""
        raw = np.asarray(vector, dtype=np.float32).tobytes()
        now = _now()
        ttl = ttl_seconds or self.config.ttl_seconds
        bound = max_entries or self.config.max_entries
        with self.database.transaction() as session:
            ns = session.get(CacheNamespace, namespace.id)
            if ns is None:  # invalidated meanwhile: do not resurrect it
                return 0
            row = CacheEntry(
                namespace_id=namespace.id,
                query=query,
                vector=raw,
                checksum=_checksum(raw, answer),
                answer=answer,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
                last_used_at=now,
                hits=0,
            )
            session.add(row)
            session.flush()
            entry_id = row.id
            self.index.add(namespace.id, [entry_id], vector)
            excess = self.index.size(namespace.id) - bound
            if excess > 0:
                evicted = session.scalars(
                    select(CacheEntry.id)
                    .where(CacheEntry.namespace_id == namespace.id)
                    .order_by(CacheEntry.last_used_at, CacheEntry.id)
                    .limit(excess)
                ).all()
                session.execute(delete(CacheEntry).where(CacheEntry.id.in_(evicted)))
                self.index.remove(namespace.id, evicted)
                session.add(
                    CacheEvent(
                        project_id=ns.project_id,
                        kind="evicted",
                        entries=len(evicted),
                        namespace_id=ns.id,
                        model=ns.model,
                        actor="gateway",
                        reason=f"namespace over {bound} entries",
                    )
                )
        return entry_id

    # -- invalidation and feedback --------------------------------------------------
    def invalidate(
        self,
        project_id: int,
        actor: str,
        reason: str,
        *,
        namespace: int | None = None,
        model: str | None = None,
        prompt: str | None = None,
    ) -> int:
        """Drop the project's namespaces (all, or one, or a model's, or a prompt's); returns entries dropped.

        ``prompt`` is a prompt name: every namespace that used any of its versions or aliases goes.
        """
        with self.database.transaction() as session:
            query = select(CacheNamespace).where(CacheNamespace.project_id == project_id)
            if namespace is not None:
                query = query.where(CacheNamespace.id == namespace)
            if model is not None:
                query = query.where(CacheNamespace.model == model)
            spaces = [
                ns
                for ns in session.scalars(query).all()
                if prompt is None or (ns.prompt or "").split("@")[0].split("/")[0] == prompt
            ]
            return sum(self._drop(session, ns, "invalidated", actor, reason) for ns in spaces)

    def drop_entry(self, project_id: int, entry_id: int, actor: str, kind: str, reason: str) -> bool:
        """Delete one entry of the project (``kind``: invalidated, or flagged as a wrong answer)."""
        with self.database.transaction() as session:
            row = session.execute(
                select(CacheEntry, CacheNamespace)
                .join(CacheNamespace, CacheEntry.namespace_id == CacheNamespace.id)
                .where(CacheEntry.id == entry_id, CacheNamespace.project_id == project_id)
            ).first()
            if row is None:
                return False
            entry, ns = row
            session.delete(entry)
            session.add(
                CacheEvent(
                    project_id=project_id,
                    kind=kind,
                    entries=1,
                    namespace_id=ns.id,
                    model=ns.model,
                    actor=actor,
                    reason=reason,
                )
            )
            self.index.remove(ns.id, [entry_id])
            return True

    def set_threshold(self, project_id: int, namespace: int, threshold: float) -> bool:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        with self.database.transaction() as session:
            ns = session.get(CacheNamespace, namespace)
            if ns is None or ns.project_id != project_id:
                return False
            ns.threshold = threshold
            self._known.pop(ns.key, None)
            return True

    def namespaces(self, project_id: int) -> list[dict[str, Any]]:
        """The project's namespaces with their entry counts."""
        with self.database.transaction() as session:
            rows = session.execute(
                select(CacheNamespace, func.count(CacheEntry.id), func.coalesce(func.sum(CacheEntry.hits), 0))
                .outerjoin(CacheEntry, CacheEntry.namespace_id == CacheNamespace.id)
                .where(CacheNamespace.project_id == project_id)
                .group_by(CacheNamespace.id)
                .order_by(CacheNamespace.id)
            ).all()
            return [
                {
                    "id": ns.id,
                    "model": ns.model,
                    "model_version": ns.model_version,
                    "prompt": ns.prompt,
                    "prompt_version": ns.prompt_version,
                    "threshold": ns.threshold,
                    "entries": count,
                    "hits": int(hits),
                    "created_at": ns.created_at.isoformat(),
                }
                for ns, count, hits in rows
            ]

    def record_audit(
        self,
        project_id: int,
        namespace: int,
        entry_id: int,
        model: str,
        agreed: bool,
        similarity: float,
        bound: float | None = None,
    ) -> None:
        """Count one audit of a served hit (``agreed``: the model's fresh answer said the same). A
        disagreement raises the entry's own bar past ``similarity``: that question, and any less
        similar one, will not get this answer again; closer paraphrases still do. With ``bound``
        (the project's ``max_false_hit_rate``), a namespace whose audits since its threshold last
        changed (at least ``MIN_AUDITS``) put the whole 95% interval of its false-hit rate above the
        bound gets a higher threshold (``THRESHOLD_STEP``), recorded as a ``threshold_raised`` event."""
        with self.database.transaction() as session:
            session.add(
                CacheEvent(
                    project_id=project_id, kind="audit_agreed" if agreed else "audit_disagreed", entries=1,
                    namespace_id=namespace, entry_id=entry_id, similarity=similarity, model=model,
                    actor="gateway", reason=f"entry {entry_id} at similarity {similarity:.3f}",
                )
            )  # fmt: skip
            entry = session.get(CacheEntry, entry_id)
            if not agreed and entry is not None and entry.namespace_id == namespace:
                entry.min_similarity = max(entry.min_similarity or 0.0, similarity + RAISE_BY)
            if not agreed and bound is not None:
                self._enforce(session, project_id, namespace, model, bound)

    def _enforce(self, session: Any, project_id: int, namespace: int, model: str, bound: float) -> None:
        """Raise the namespace's threshold when its audits say it serves wrong answers too often."""
        from kosmos.genai.cache_stats import bound_verdict, wilson

        space = session.get(CacheNamespace, namespace, with_for_update=True)
        if space is None or space.threshold >= MAX_THRESHOLD:
            return
        raised = session.scalar(
            select(func.max(CacheEvent.at)).where(
                CacheEvent.namespace_id == namespace, CacheEvent.kind == "threshold_raised"
            )
        )
        audited = (
            select(CacheEvent.kind, func.count())
            .where(
                CacheEvent.namespace_id == namespace, CacheEvent.kind.in_(("audit_agreed", "audit_disagreed"))
            )
            .group_by(CacheEvent.kind)
        )
        if raised is not None:  # evidence about the threshold in force only
            audited = audited.where(CacheEvent.at > raised)
        counts = {kind: int(n) for kind, n in session.execute(audited).all()}
        wrong, audits = counts.get("audit_disagreed", 0), sum(counts.values())
        interval = wilson(wrong, audits)
        if audits < MIN_AUDITS or bound_verdict(interval, bound) != "above":
            return
        before, space.threshold = (
            space.threshold,
            min(MAX_THRESHOLD, round(space.threshold + THRESHOLD_STEP, 3)),
        )
        assert interval is not None
        session.add(
            CacheEvent(
                project_id=project_id, kind="threshold_raised", entries=0, namespace_id=namespace,
                model=model, actor="gateway",
                reason=f"{wrong} of {audits} audits disagreed ({interval[0]:.1%}-{interval[1]:.1%}), above "
                f"the bound {bound:.1%}: threshold {before:.2f} -> {space.threshold:.2f}",
            )
        )  # fmt: skip
        log.warning(
            "cache namespace %s: threshold raised to %.2f (false hits above the bound)",
            namespace,
            space.threshold,
        )

    def events_by_namespace(self, project_id: int, since: datetime) -> dict[int, dict[str, int]]:
        """Flags and audits since ``since``, by namespace: ``{namespace: {kind: count}}``."""
        with self.database.transaction() as session:
            rows = session.execute(
                select(CacheEvent.namespace_id, CacheEvent.kind, func.count())
                .where(
                    CacheEvent.project_id == project_id,
                    CacheEvent.at >= since,
                    CacheEvent.kind.in_(("flagged", "audit_agreed", "audit_disagreed")),
                    CacheEvent.namespace_id.is_not(None),
                )
                .group_by(CacheEvent.namespace_id, CacheEvent.kind)
            ).all()
        out: dict[int, dict[str, int]] = {}
        for namespace, kind, count in rows:
            out.setdefault(int(namespace), {})[kind] = int(count)
        return out

    def events(self, project_id: int, since: datetime) -> dict[str, int]:
        """Entries flagged, invalidated and evicted, and audits agreed and disagreed, since ``since``."""
        with self.database.transaction() as session:
            rows = session.execute(
                select(CacheEvent.kind, func.count(), func.sum(CacheEvent.entries))
                .where(CacheEvent.project_id == project_id, CacheEvent.at >= since)
                .group_by(CacheEvent.kind)
            ).all()
        out = {"flagged": 0, "invalidated": 0, "evicted": 0, "audit_agreed": 0, "audit_disagreed": 0}
        for kind, count, entries in rows:
            out[kind] = int(entries or 0 if kind in ("invalidated", "evicted") else count)
        return out
