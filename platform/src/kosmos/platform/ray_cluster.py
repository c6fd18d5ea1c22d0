"""Connecting to the Ray cluster Kosmos trains and serves on."""

from __future__ import annotations

import os
import sys
import threading

from kosmos.platform.errors import ServiceUnavailable
from kosmos.platform.settings import Settings

_lock = threading.Lock()


def head_command(port: int, *, num_cpus: float | None = None, temp_dir: str | None = None) -> list[str]:
    """``ray start --head`` in the foreground, without dashboard or usage stats (kosmos up, tests)."""
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        "--port",
        str(port),
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
    ]
    if num_cpus:
        command += ["--num-cpus", str(num_cpus)]
    if temp_dir:
        command += ["--temp-dir", temp_dir]
    return command


def ray_address(settings: Settings) -> str:
    """The configured cluster, else ``RAY_ADDRESS``, else the embedded head node of `kosmos up`."""
    return settings.ray.address or os.environ.get("RAY_ADDRESS") or f"127.0.0.1:{settings.ray.gcs_port}"


def connect(settings: Settings) -> None:
    """Join the Ray cluster once per process (idempotent, thread-safe).

    Never starts a private Ray instance: a missing cluster is an error naming the
    address, so nothing trains or serves on a cluster nobody can see.
    """
    import ray

    with _lock:
        if ray.is_initialized():
            return
        address = ray_address(settings)
        try:
            ray.init(
                address=address,
                namespace="kosmos",
                log_to_driver=False,
                ignore_reinit_error=True,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError) as exc:
            raise ServiceUnavailable(f"Ray cluster at {address} is unreachable: {exc}") from exc
