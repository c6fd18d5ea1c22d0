"""Per-step metrics, stored off the training loop's back.

MLflow's own ``log_metrics(..., synchronous=False)`` costs about 16 ms per call on
these machines (measured in bench/tracking_overhead.py), far too much for a call
per training step. Two sinks, chosen by :func:`metric_sink`:

- :class:`MetricRing` (a tracking server over HTTP, as every Kosmos profile runs): each call
  is one frame copied into shared memory that a separate logger process
  (:mod:`kosmos.training.metric_logger`) reads and batches to MLflow. The loop pays a few
  microseconds and no GIL time for HTTP; a training process that dies after a step (an
  exception, ``SIGKILL``) loses nothing, because the frame is in memory the logger shares.
- :class:`MetricBuffer` (a store MLflow opens in-process, such as ``sqlite:///``): appended
  to a list that a thread sends with ``log_batch`` every second; ``close()`` drains it.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import mmap
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Protocol

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from kosmos.training.metric_logger import HEADER, MAX_BATCH  # one frame format, one limit

log = logging.getLogger(__name__)


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


class MetricSink(Protocol):
    def add(self, metrics: Mapping[str, float], step: int | None) -> None: ...

    def close(self) -> None: ...


RING_BYTES = 16 << 20
"""The shared ring's size: about 30,000 calls of 20 metrics that the logger has not read yet."""
MAX_FRAME = 1 << 20
CLOSE_TIMEOUT_S = 600.0


def _shared_memory(size: int) -> int:
    """A file descriptor of ``size`` zeroed bytes that live in memory, named nowhere."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kosmos-metrics")
    else:  # not Linux: an unlinked temporary file does the same
        fd, path = tempfile.mkstemp(prefix="kosmos-metrics-")
        os.unlink(path)
    os.ftruncate(fd, size)
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)  # the pages exist now, not at the loop's first touch of each
    return fd


def _mapped(fd: int, size: int) -> mmap.mmap:
    """The memory, mapped with its page tables filled (a page fault costs a VM tens of us)."""
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(fd, size, flags=flags)


class MetricRing:
    """Frames into a ring of shared memory that a logger process reads; ``close()`` waits until
    it stored everything.

    A call copies one frame into the ring and advances the written count: no system call, no
    lock, nothing that wakes another process (on these VMs a pipe write that wakes its reader
    cost about 90 us, a third of a 0.3 ms step). The logger polls the ring every few
    milliseconds. Its stdin is a pipe nobody writes to: when this process ends, however it
    ends, the pipe closes, and the logger reads what is left in the ring (shared memory
    outlives the writer) and stores it. A frame repeats its length after its payload, so the
    logger never takes a frame whose bytes are not all there yet.
    """

    def __init__(self, tracking_uri: str, run_id: str, ring_bytes: int = RING_BYTES) -> None:
        self.run_id = run_id
        self._capacity = ring_bytes
        fd = _shared_memory(HEADER + ring_bytes)
        self._ring = _mapped(fd, HEADER + ring_bytes)
        read_end, self._alive = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "kosmos.training.metric_logger", tracking_uri, run_id, str(fd)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=[fd],
            start_new_session=True,  # Ctrl-C stops the training, not the logger that stores its metrics
        )
        os.close(read_end)
        os.close(fd)  # the mapping keeps the memory; the logger has its own descriptor
        self._written = 0
        self._closed = False
        self._forked = False
        _open_rings.add(self)

    def add(self, metrics: Mapping[str, float], step: int | None) -> None:
        if self._closed:
            where = "log from the process that opened it" if self._forked else "its metrics are stored"
            raise RuntimeError(f"run {self.run_id} is not open here: {where}")
        stamp = int(time.time() * 1000)
        try:
            payload = marshal.dumps((step or 0, stamp, metrics))
        except ValueError:  # tensors, a Mapping that is not a dict: plain floats then
            payload = marshal.dumps((step or 0, stamp, {str(k): float(v) for k, v in metrics.items()}))
        if len(payload) > MAX_FRAME:  # thousands of metrics in one call: in parts
            items = list(metrics.items())
            half = len(items) // 2
            self.add(dict(items[:half]), step)
            self.add(dict(items[half:]), step)
            return
        size = len(payload).to_bytes(4, "little")
        self._put(size + payload + size)

    def _put(self, frame: bytes) -> None:
        ring, capacity, n = self._ring, self._capacity, len(frame)
        while self._written + n - struct.unpack_from("<Q", ring, 8)[0] > capacity:
            self._wait_for_room()
        at = self._written % capacity
        first = min(n, capacity - at)
        ring[HEADER + at : HEADER + at + first] = frame[:first]
        if first < n:
            ring[HEADER : HEADER + n - first] = frame[first:]
        self._written += n
        struct.pack_into("<Q", ring, 0, self._written)  # after the bytes: the frame is complete

    def _wait_for_room(self) -> None:
        """The ring is full: the loop logs faster than MLflow stores, so it waits for the logger."""
        if self._process.poll() is not None:
            raise RuntimeError(f"metrics could not be stored: {self._failure()}")
        time.sleep(0.001)

    def _failure(self) -> str:
        self._process.wait(timeout=30)
        said = self._process.stderr.read().decode(errors="replace").strip() if self._process.stderr else ""
        return said.splitlines()[-1] if said else f"the metric logger exited with {self._process.returncode}"

    def close(self) -> None:
        """Tell the logger the run is over and wait until it stored every metric."""
        if self._closed:
            return
        self._closed = True
        _open_rings.discard(self)
        os.write(self._alive, b"e")  # the end, said: a forked child may still hold the pipe open
        os.close(self._alive)
        try:
            self._process.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise RuntimeError(
                f"storing the metrics of run {self.run_id} took over {CLOSE_TIMEOUT_S:.0f} s"
            ) from None
        finally:
            self._ring.close()
        if self._process.returncode != 0:
            raise RuntimeError(f"metrics could not be stored: {self._failure()}")


_open_rings: weakref.WeakSet[MetricRing] = weakref.WeakSet()


def _forget_rings_after_fork() -> None:
    """A forked child (a DataLoader worker, say) must neither keep the logger waiting nor write
    into its parent's ring: it closes its copy of the pipe, and its copy of the run refuses."""
    for ring in list(_open_rings):
        with contextlib.suppress(OSError):
            os.close(ring._alive)
        ring._closed = ring._forked = True
    _open_rings.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_rings_after_fork)


def metric_sink(client: MlflowClient, run_id: str, tracking_uri: str) -> MetricSink:
    """A logger process for a tracking server over HTTP, else the in-process buffer."""
    if tracking_uri.startswith(("http://", "https://")):
        return MetricRing(tracking_uri, run_id)
    return MetricBuffer(client, run_id)
