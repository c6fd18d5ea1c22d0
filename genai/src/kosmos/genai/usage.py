"""Usage rows of gateway calls (and their quota charges and traces), written off the request's path.

    call --add()--> queue (memory, no I/O) --every flush_s--> one transaction of LLMUsage rows
                                                          '--> quota charges, MLflow traces

A call hands its usage row to :meth:`UsageRecorder.add` and returns; a thread writes what
is queued in one transaction a second. :meth:`UsageRecorder.close` writes what is left: the
app's shutdown closes its gateway's recorder (``api.py``'s lifespan) and the interpreter's
exit closes every one left (:func:`close_all`), so a process that stops cleanly loses no
row. A write that fails (the database restarting) is retried on the next tick; nothing is
half-written, because a batch commits whole or not at all.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kosmos.genai.models_db import LLMUsage
from kosmos.platform.db.engine import Database

log = logging.getLogger(__name__)
MAX_QUEUED = 100_000
"""Rows kept while the database cannot be written; older ones are dropped (and counted) past it."""

_recorders: weakref.WeakSet[UsageRecorder] = weakref.WeakSet()


class UsageRecorder:
    """Batches usage rows (and runs what follows each: quota charge, trace) in a thread of its own."""

    def __init__(self, database: Database, flush_s: float = 1.0, max_batch: int = 1000) -> None:
        self.database = database
        self.flush_s, self.max_batch = flush_s, max_batch
        self.dropped = 0
        self._in_flight = 0  # rows taken from the queue whose batch has not finished
        self._queue: deque[tuple[dict[str, Any], Callable[[], None] | None]] = deque()
        self._lock = threading.Lock()  # one flush at a time (the thread's and close's)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kosmos-usage", daemon=True)
        self._thread.start()
        _recorders.add(self)

    def add(
        self, project_id: int, actor: str, row: dict[str, Any], after: Callable[[], None] | None = None
    ) -> None:
        """Queue one call's usage row (``LLMUsage`` columns) and what runs once it is stored
        (the quota charge, the trace); no I/O here."""
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(
            ({"project_id": project_id, "actor": actor, "at": datetime.now(UTC), **row}, after)
        )

    def pending(self) -> int:
        """Rows not yet written (queued, or in a batch still being written)."""
        return len(self._queue) + self._in_flight

    def flush(self) -> int:
        """Write what is queued, in batches of ``max_batch`` rows; returns how many rows were written."""
        written = 0
        with self._lock:
            while self._queue:
                self._in_flight = size = min(self.max_batch, len(self._queue))  # counted before taken
                batch = [self._queue.popleft() for _ in range(size)]
                try:
                    with self.database.transaction() as session:
                        session.add_all([LLMUsage(**row) for row, _ in batch])
                except Exception as exc:  # back to the front, in order; the next tick retries
                    self._queue.extendleft(reversed(batch))
                    self._in_flight = 0
                    log.warning(
                        "could not write %d usage rows (%s); retrying", len(batch), type(exc).__name__
                    )
                    break
                written += len(batch)
                for _, after in batch:
                    if after is not None:
                        try:
                            after()
                        except Exception as exc:  # a quota counter or a trace never loses a row
                            log.warning("after writing a usage row: %s", type(exc).__name__)
                self._in_flight = 0
        return written

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def close(self) -> None:
        """Stop the thread and write everything still queued."""
        self._stop.set()
        self._thread.join(timeout=max(5.0, 2 * self.flush_s))
        self.flush()
        _recorders.discard(self)


def close_all() -> None:
    """Flush and stop every recorder of this process (at the interpreter's exit)."""
    for recorder in list(_recorders):
        recorder.close()


atexit.register(close_all)
