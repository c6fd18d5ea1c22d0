"""The metric logger process: ``python -m kosmos.training.metric_logger TRACKING_URI RUN_ID FD``.

A training process copies each ``log_metrics`` call as one frame into a ring of shared memory
(``FD``, see ``kosmos.training.metric_buffer.MetricRing``) and goes on; this process polls the
ring every few milliseconds and turns the frames into MLflow ``runs/log-batch`` calls of at
most 1,000 values. The training loop therefore pays for a ``marshal.dumps`` and a memory copy
per call, and none of its GIL time goes to HTTP, JSON or MLflow's client. This process's stdin
is a pipe the training process holds open: when it ends, however it ends (its own ``close``,
an exception, ``SIGKILL``), the pipe closes, and this process reads what is left in the ring,
stores it and exits.

It also stays out of the loop's way on the CPU: it runs at a lower priority (``nice``), and
while frames keep coming it sends one batch a second, so that MLflow's work (often on the same
host) does not take the loop's core; when the loop pauses, ends or dies, or the backlog passes
``BUSY_BACKLOG`` values, it sends as fast as MLflow takes them. Past ``MAX_BACKLOG`` it stops
reading, and the loop waits for room in the ring: nothing can be logged faster than MLflow
stores it for long.

A frame is a 4-byte little-endian length, ``marshal.dumps((step, timestamp_ms, {key: value}))``
and the length again (a frame whose bytes are not all there yet is left for the next poll).
marshal is safe here because the only writer is the training process that started this one.
It speaks MLflow's REST API with ``httpx`` (no MLflow import, so it starts in a fraction of a
second) and sends ``MLFLOW_TRACKING_TOKEN`` (or the basic-auth variables) as the MLflow client does.
"""

from __future__ import annotations

import contextlib
import marshal
import math
import mmap
import os
import select
import struct
import sys
import threading
import time
from collections import deque
from typing import Any

import httpx

MAX_BATCH = 1000  # MLflow's limit for metrics in one log_batch
HEADER = 64  # the ring's header: written (u64 at 0) and read (u64 at 8) byte counts
INTERVAL_S = 1.0
RETRIES = 5
QUIET_S = 0.5
"""No frame for this long: the loop is not busy, send everything."""
BUSY_BACKLOG = 100_000
MAX_BACKLOG = 2_000_000


def _value(value: float) -> float | str:
    """A JSON-safe double: MLflow's protobuf JSON takes NaN and infinities as strings."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _auth() -> dict[str, Any]:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"headers": {"Authorization": f"Bearer {token}"}}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return {"auth": (user, password)} if user and password else {}


class Sender:
    """Pending metrics, sent in batches by a thread; ``finish`` sends the rest."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/runs/log-batch"
        self.run_id = run_id
        self.pending: deque[tuple[str, float, int, int]] = deque()
        self.http = httpx.Client(timeout=60, **_auth())
        self.wake = threading.Event()
        self.room = threading.Event()
        self.room.set()
        self.last_frame = 0.0
        self.done = False
        self.error: str | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def add(self, step: int, timestamp: int, metrics: dict[str, Any]) -> None:
        self.last_frame = time.monotonic()
        for key, value in metrics.items():
            self.pending.append((key, float(value), timestamp, step))
        if len(self.pending) >= MAX_BACKLOG:
            self.room.clear()
            self.wake.set()
            self.room.wait()  # backpressure: the pipe fills and the loop's writes wait

    def _busy(self) -> bool:
        """The loop is logging now, and the backlog is small enough to wait."""
        recent = time.monotonic() - self.last_frame < QUIET_S
        return recent and not self.done and len(self.pending) < BUSY_BACKLOG

    def _send(self, *, all_of_it: bool) -> None:
        while self.pending:
            count = min(MAX_BATCH, len(self.pending))
            batch = [self.pending.popleft() for _ in range(count)]
            if len(self.pending) < MAX_BACKLOG // 2:
                self.room.set()
            metrics = [{"key": k, "value": _value(v), "timestamp": t, "step": s} for k, v, t, s in batch]
            self._post(metrics)
            if not all_of_it and self._busy():
                return  # one batch a second while the loop is busy

    def _post(self, metrics: list[dict[str, Any]]) -> None:
        problem = ""
        for attempt in range(RETRIES):
            try:
                response = self.http.post(self.url, json={"run_id": self.run_id, "metrics": metrics})
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                problem = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # a refusal: retrying will not help
            time.sleep(min(2**attempt * 0.2, 5))
        raise RuntimeError(problem)

    def _loop(self) -> None:
        while not self.done:
            self.wake.wait(INTERVAL_S if self._busy() else QUIET_S)
            self.wake.clear()
            try:
                self._send(all_of_it=False)
            except Exception as exc:
                self.error = str(exc)
                self.room.set()
                return

    def finish(self) -> None:
        self.done = True
        self.wake.set()
        self.thread.join()
        if self.error is None:
            try:
                self._send(all_of_it=True)
            except Exception as exc:
                self.error = str(exc)


POLL_S = 0.02


class Ring:
    """The reading side of the shared ring."""

    def __init__(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        self.memory = mmap.mmap(fd, size)
        self.capacity = size - HEADER
        self.read = struct.unpack_from("<Q", self.memory, 8)[0]

    def frames(self) -> list[tuple[int, int, dict[str, Any]]]:
        """Every complete frame written since the last call; the space they took is free again."""
        written = struct.unpack_from("<Q", self.memory, 0)[0]
        if written == self.read:
            return []
        at, n = self.read % self.capacity, written - self.read
        first = min(n, self.capacity - at)
        data = self.memory[HEADER + at : HEADER + at + first]
        if first < n:
            data += self.memory[HEADER : HEADER + n - first]
        found, offset = [], 0
        while offset + 4 <= len(data):
            size = int.from_bytes(data[offset : offset + 4], "little")
            end = offset + 4 + size
            if end + 4 > len(data) or int.from_bytes(data[end : end + 4], "little") != size:
                break  # not all there yet
            found.append(marshal.loads(data[offset + 4 : end]))
            offset = end + 4
        self.read += offset
        struct.pack_into("<Q", self.memory, 8, self.read)
        return found


def follow(ring: Ring, alive: Any, sender: Sender) -> None:
    """Read the ring until the training process has gone and the ring is empty."""
    gone = False
    while sender.error is None:
        for step, timestamp, metrics in ring.frames():
            sender.add(step, timestamp, metrics)
        if gone:
            return
        ready, _, _ = select.select([alive], [], [], POLL_S)
        if ready:
            said = os.read(alive.fileno(), 4096)
            gone = not said or b"e" in said  # closed (it died) or the end said: one last read


def main() -> None:
    tracking_uri, run_id, fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with contextlib.suppress(OSError):
        os.nice(10)  # the training loop comes first
    ring = Ring(fd)
    sender = Sender(tracking_uri, run_id)
    try:
        follow(ring, sys.stdin, sender)
    finally:
        sender.finish()
    if sender.error is not None:
        print(f"metrics of run {run_id} could not be stored: {sender.error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
