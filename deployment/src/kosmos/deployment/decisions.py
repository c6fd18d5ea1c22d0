"""Decision records: every data-plane request, traced to what made its answer, written off its path.

    data-plane request --add(record)--> queue (memory, bounded; no I/O, no serialization)
        --every flush_s, in the recorder's thread--> one COPY (an INSERT off PostgreSQL) (``decisions``)
    kosmos explain ID --> the project's rows for ID  (+ lineage: kosmos.deployment.explain)
    kosmos replay ID  --> recompute from the record   (kosmos.deployment.replay)

Where they go: the metadata database (SQLite embedded, PostgreSQL in production), one row per
request (a batch request: one per chunk) with the record as a JSON document, indexed by
(project, request id) and (project, deployment, time). ``explain`` is a point lookup by
request id, and batch replay reads a time window of one deployment: both are index reads in
PostgreSQL, while Parquet files in the artifact store would need an index of their own for the
first. Retention is a DELETE by ``expires_at`` (the reconciler runs it). At volumes past a few
thousand requests a second per deployment, PostgreSQL's partitioning by day is the next step.

A request never waits on the store and never fails because of it: a write that fails keeps the
rows queued (retried next tick) up to ``MAX_QUEUED``; past that the oldest are dropped and
counted (``RecorderStats.dropped``, a warning in the log, and in a Ray process the
``kosmos_decision_records_{written,dropped,failed_writes}`` counters on Ray's metrics endpoint),
and ``close`` writes what is left on a clean shutdown.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import threading
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import orjson
from sqlalchemy import JSON, Text, bindparam, cast, delete, insert, select, type_coerce
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from kosmos.deployment.models import DecisionRow
from kosmos.platform import pii
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Project

log = logging.getLogger(__name__)
MAX_QUEUED = 50_000
"""Records held while the store cannot be written; the oldest are dropped (and counted) past it."""
DEFAULT_RETENTION_DAYS = 30
_recorders: weakref.WeakSet[DecisionRecorder] = weakref.WeakSet()


@dataclass(frozen=True)
class RecorderStats:
    """What one recorder did since it started."""

    queued: int
    written: int
    dropped: int
    failed_writes: int


class DecisionRecorder:
    """Batches decision records into the ``decisions`` table from a thread of its own.

    A record is a dict with at least ``project``, ``request_id``, ``deployment``, ``kind``,
    ``at`` (epoch seconds) and ``status``; ``part``, ``model_version`` and ``retention_days``
    are optional. It is made JSON-safe (NaN -> None, timestamps -> ISO text) in the thread."""

    def __init__(self, database: Database, flush_s: float = 1.0, max_batch: int = 500) -> None:
        self.database, self.flush_s, self.max_batch = database, flush_s, max_batch
        self.written = self.dropped = self.failed_writes = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._projects: dict[str, int] = {}
        self._counters = _ray_counters()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kosmos-decisions", daemon=True)
        self._thread.start()
        _recorders.add(self)

    def add(self, record: dict[str, Any]) -> None:
        """Queue one record (no I/O; a deque append is atomic under the GIL)."""
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self._count("dropped", 1)
        self._queue.append(record)

    def _count(self, what: str, n: int) -> None:
        setattr(self, what, getattr(self, what) + n)
        if self._counters is not None and n:
            self._counters[what].inc(n)

    def stats(self) -> RecorderStats:
        return RecorderStats(len(self._queue), self.written, self.dropped, self.failed_writes)

    def flush(self) -> int:
        """Write what is queued; returns the rows written (0 when the store is down: they stay queued).

        A record the store refuses (a value it cannot take) is dropped and counted, alone: the
        rest of its batch is written one by one, so one bad record never blocks the queue."""
        written = 0
        with self._lock:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                try:
                    n = self._write(batch)
                except Exception as exc:
                    if _refused(exc):
                        written += self._one_by_one(batch)
                        continue
                    self._requeue(batch, exc)
                    break
                written += n
        return written

    def _write(self, batch: list[dict[str, Any]]) -> int:
        with self.database.transaction() as session:
            rows = self._rows(session, batch)
            if rows:
                _insert(session, rows)
        self._count("written", len(rows))
        return len(rows)

    def _one_by_one(self, batch: list[dict[str, Any]]) -> int:
        written = 0
        for record in batch:
            try:
                written += self._write([record])
            except Exception as exc:
                if not _refused(exc):  # the store went down meanwhile: keep this one and the rest
                    self._requeue(batch[batch.index(record) :], exc)
                    break
                self._count("dropped", 1)
                log.warning(  # the request id only: a record holds what a caller sent
                    "dropped decision record %s: %s", record.get("request_id"), type(exc).__name__
                )
        return written

    def _requeue(self, batch: list[dict[str, Any]], exc: Exception) -> None:
        """Back to the front, in order, within the bound; the next tick retries."""
        self._count("failed_writes", 1)
        room = MAX_QUEUED - len(self._queue)
        keep = batch[-room:] if room > 0 else []
        self._count("dropped", len(batch) - len(keep))
        self._queue.extendleft(reversed(keep))
        log.warning(
            "could not write %d decision records (%s); %d queued, %d dropped so far",
            len(batch), type(exc).__name__, len(self._queue), self.dropped,
        )  # fmt: skip

    def _rows(self, session: Any, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        missing = {r["project"] for r in batch} - self._projects.keys()
        if missing:
            found = session.execute(select(Project.name, Project.id).where(Project.name.in_(missing)))
            self._projects.update(dict(found.all()))
        rows = []
        for record in batch:
            project_id = self._projects.get(record["project"])
            if project_id is None:  # the project was deleted since: nothing to keep it for
                continue
            at = datetime.fromtimestamp(record["at"], UTC)
            days = record.get("retention_days") or DEFAULT_RETENTION_DAYS
            rows.append(
                {
                    "project_id": project_id,
                    "request_id": str(record["request_id"])[:64],
                    "part": int(record.get("part") or 0),
                    "deployment": record["deployment"],
                    "kind": record["kind"],
                    "at": at,
                    "model_version": record.get("model_version"),
                    "status": record["status"],
                    "expires_at": at + timedelta(days=days),
                    "record_json": to_json(_redacted({**record, "at": at})),
                }
            )
        return rows

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write what is left (a clean shutdown loses nothing)."""
        self._stop.set()
        self.flush()


def _refused(exc: Exception) -> bool:
    """Whether ``exc`` is about the records (a value the store refuses), not the store being down."""
    if isinstance(exc, DataError | IntegrityError | TypeError | ValueError | KeyError):
        return True
    # COPY's errors come from the driver unwrapped: SQLSTATE classes 22 (data) and 23 (integrity)
    if str(getattr(exc, "sqlstate", None) or "")[:2] in ("22", "23"):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)  # e.g. not serializable


def _ray_counters() -> dict[str, Any] | None:
    """Ray's metric counters in a Ray process (a Serve replica); None elsewhere."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        from ray.util.metrics import Counter

        return {
            what: Counter(f"kosmos_decision_records_{what}", description=f"Decision records {what}.")
            for what in ("written", "dropped", "failed_writes")
        }
    except Exception:  # metrics are a bonus: recording works without them
        return None


@atexit.register
def close_all() -> None:
    """Every recorder still open writes what it holds when the interpreter exits."""
    for recorder in list(_recorders):
        recorder.close()


_COLUMNS = (
    "project_id", "request_id", "part", "deployment", "kind", "at",
    "model_version", "status", "expires_at", "record_json",
)  # fmt: skip


def _insert(session: Any, rows: list[dict[str, Any]]) -> None:
    """Rows whose record is JSON text already (serialized once, by ``to_json``). PostgreSQL through
    psycopg: one ``COPY`` (a fifth of an INSERT's per-row work in this process, measured); other
    stores: an INSERT of many rows."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and bind.dialect.driver == "psycopg":
        columns = ", ".join(c.removesuffix("_json") for c in _COLUMNS)
        dbapi = session.connection().connection.dbapi_connection
        with dbapi.cursor() as cursor, cursor.copy(f"COPY decisions ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in _COLUMNS))
        return
    text = bindparam("record_json", type_=Text())
    value = cast(text, JSON) if bind.dialect.name == "postgresql" else type_coerce(text, Text())
    session.execute(insert(DecisionRow.__table__).values(record=value), rows)


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def to_json(record: dict[str, Any]) -> str:
    """``record`` as JSON text a PostgreSQL ``json`` column takes, in one pass of orjson (about 4 us
    for a 2.5 KB record; NaN and infinities become null); ``jsonable``'s walk and the standard
    encoder only for what orjson refuses (an integer past 64 bits)."""
    try:
        return orjson.dumps(record, default=_encode, option=_JSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(jsonable(record), separators=(",", ":"), default=_encode)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    return str(value)


def _redacted(record: dict[str, Any]) -> dict[str, Any]:
    if isinstance(record.get("input"), list):
        record["input"], record["redacted"] = redact_rows(record["input"])
    return record


def jsonable(value: Any) -> Any:
    """``value`` as JSON a PostgreSQL ``json`` column takes: no NaN or infinity (None), timestamps as
    ISO text, numpy scalars and arrays as Python numbers and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, np.generic | np.ndarray):
        return jsonable(value.tolist())
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def redact_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows with card numbers, IBANs, emails and phone numbers in text fields replaced (numbers and
    keys are kept: a replay needs them); and how many values were redacted."""
    found = 0
    out = []
    for row in rows:
        clean = {}
        for key, value in row.items():
            if isinstance(value, str) and value:
                redaction = pii.redact(value)
                found += sum(redaction.counts.values())
                value = redaction.text
            clean[key] = value
        out.append(clean)
    return out, found


def purge(database: Database, now: datetime | None = None) -> int:
    """Delete records past their deployment's retention; returns how many went."""
    with database.transaction() as session:
        result = session.execute(
            delete(DecisionRow).where(DecisionRow.expires_at < (now or datetime.now(UTC)))
        )
        return int(result.rowcount or 0)


def find(session: Any, project_id: int, request_id: str) -> list[DecisionRow]:
    """The records of one request in a project, by part (none: unknown here, or another project's)."""
    query = (
        select(DecisionRow)
        .where(DecisionRow.project_id == project_id, DecisionRow.request_id == request_id)
        .order_by(DecisionRow.part, DecisionRow.id)
    )
    return list(session.scalars(query))


def window(
    session: Any,
    project_id: int,
    deployment: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
    newest_first: bool = False,
) -> list[DecisionRow]:
    """One deployment's records in ``[since, until)``, oldest first (or the newest ``limit``)."""
    query = select(DecisionRow).where(
        DecisionRow.project_id == project_id, DecisionRow.deployment == deployment
    )
    if since is not None:
        query = query.where(DecisionRow.at >= since)
    if until is not None:
        query = query.where(DecisionRow.at < until)
    order = DecisionRow.at.desc() if newest_first else DecisionRow.at
    return list(session.scalars(query.order_by(order, DecisionRow.id).limit(limit)))


def part_of(body: dict[str, Any]) -> int:
    """Which chunk of a batch request ``body`` is (``_part``, set by the batch route; 0 otherwise)."""
    part = body.get("_part")
    return part if isinstance(part, int) and not isinstance(part, bool) and 0 <= part < 10_000 else 0


@dataclass(frozen=True)
class RecordSource:
    """What every record of one deployment shares (the ingress's route, the router's config)."""

    project: str
    deployment: str
    model: str
    feature_service: str | None
    retention_days: int
    missing_entities: str = "reject"


def model_record(
    source: RecordSource,
    *,
    request_id: str,
    body: dict[str, Any],
    caller: str | None,
    received: list[dict[str, Any]],
    features: dict[str, dict[str, Any]],
    out: dict[str, Any],
    latency_ms: float,
    traffic: dict[str, Any],
    shadow_version: int | None,
    at: float,
    imputed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The record of one tabular prediction (built on the request's path: references only, no copies;
    the recorder makes it JSON and redacts ``input`` in its thread)."""
    error = out.get("error")
    return {
        "project": source.project,
        "deployment": source.deployment,
        "kind": "model",
        "request_id": request_id,
        "part": part_of(body),
        "at": at,
        "caller": caller,
        "model": source.model,
        "model_version": out.get("model_version"),
        "shadow_version": shadow_version,
        "traffic": traffic,
        "input": received,
        "feature_service": source.feature_service,
        "features": features,
        "missing_entities": {"policy": source.missing_entities, "imputed": imputed or []},
        "output": None if error else {"predictions": out["predictions"], "classes": out.get("classes")},
        "error": error.get("message") if error else None,
        "status": "error" if error else "ok",
        "latency_ms": round(latency_ms, 3),
        "retention_days": source.retention_days,
    }


def log_line(row: DecisionRow) -> dict[str, Any]:
    """A record as one line of ``kosmos deploy logs`` (``error`` only on a failed request)."""
    record = row.record
    output = record.get("output") or {}
    line = {
        "at": row.at.isoformat(),
        "request_id": row.request_id,
        "model_version": row.model_version,
        "latency_ms": record.get("latency_ms"),
        "features_used": list(record.get("features") or {}),
        "rows": len(record.get("input") or []),
        "predictions": (output.get("predictions") or [])[:10],
    }
    if record.get("error"):
        line["error"] = record["error"]
    return line
