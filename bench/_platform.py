"""What the platform benchmarks share: free ports, and a `kosmos up` of their own in a temp home."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Platform:
    process: subprocess.Popen
    home: Path
    url: str
    token: str
    env: dict[str, str]
    mlflow_port: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=120)


def start_platform(home: Path, **settings: str) -> Platform:
    """`kosmos up` on free ports under ``home`` (``settings``: extra KOSMOS_* variables); waits
    until every bootstrap (demo model, default LLM) is done."""
    home.mkdir(parents=True, exist_ok=True)
    api, mlflow_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS_", "MLFLOW_", "RAY_"))}
    env.update(
        KOSMOS_HOME=str(home),
        KOSMOS_SERVER__PORT=str(api),
        KOSMOS_MLFLOW__PORT=str(mlflow_port),
        KOSMOS_UI__PORT=str(free_port()),
        KOSMOS_RAY__GCS_PORT=str(free_port()),
        KOSMOS_DATAPLANE__HAPROXY_STATS_PORT=str(free_port()),
        KOSMOS_DATAPLANE__HAPROXY_METRICS_PORT=str(free_port()),
        **settings,
    )
    log = (home / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kosmos.platform.cli.main", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while "Try:" not in (home / "up.log").read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            raise RuntimeError((home / "up.log").read_text()[-3000:])
        time.sleep(2)
    token = json.loads((home / "credentials.json").read_text())["token"]
    return Platform(process, home, f"http://127.0.0.1:{api}", token, env, mlflow_port)
