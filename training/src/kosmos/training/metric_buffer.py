"""Per-step metrics, batched in memory and written by a background thread.

MLflow's own ``log_metrics(..., synchronous=False)`` costs about 16 ms per call on
these machines (measured in bench/tracking_overhead.py), far too much for a call
per training step. Appending to a buffer costs microseconds; a thread sends the
buffer with ``log_batch`` (at most 1,000 values a call) every second or whenever
it fills, and ``close()`` drains it, so a run that crashes keeps its metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)
MAX_BATCH = 1000  # MLflow's limit for metrics in one log_batch


class MetricBuffer:
    def __init__(self, client: MlflowClient, run_id: str, interval_s: float = 1.0) -> None:
        self.client = client
        self.run_id = run_id
        self.interval_s = interval_s
        self._pending: list[Metric] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"kosmos-metrics-{run_id[:8]}", daemon=True)
        self._thread.start()

    def add(self, metrics: Mapping[str, float], step: int | None) -> None:
        if self._error is not None:
            raise RuntimeError(f"metrics could not be stored: {self._error}") from self._error
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items()]
        with self._lock:
            self._pending.extend(batch)
            full = len(self._pending) >= MAX_BATCH
        if full:
            self._wake.set()

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if not batch:
                return
            self.client.log_batch(self.run_id, metrics=batch)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self._drain()
            except Exception as exc:  # surfaced on the next add() and on close()
                log.exception("storing metrics of run %s failed", self.run_id)
                self._error = exc
                return

    def close(self) -> None:
        """Stop the thread and store everything still buffered."""
        self._closed = True
        self._wake.set()
        self._thread.join()
        if self._error is None:
            self._drain()
        else:
            raise RuntimeError(f"metrics could not be stored: {self._error}") from self._error
