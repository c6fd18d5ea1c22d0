"""Tracking overhead: a training loop logging 20 metrics per step for 2,000 steps.

The loop trains a small PyTorch MLP (one forward/backward pass per step). It runs
three times without tracking and three times inside ``kosmos.training.run`` with
``log_metrics`` every step (written to a pipe; a logger process stores them), against a real control plane
and a real `mlflow server` (SQLite backend). Goal (issue 4): overhead <= 5%. ``--gated`` serves
MLflow behind Kosmos's access rules (``--app-name kosmos``, every request's token checked), as
`make run` runs it since issue 19.

    .venv/bin/python bench/tracking_overhead.py [--steps 2000] [--metrics 20] [--gated]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import torch
import uvicorn

from kosmos.platform.api.app import create_app
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.client import KosmosClient
from kosmos.platform.settings import Settings
from kosmos.training import run, sdk
from kosmos.training.metric_buffer import metric_sink


def make_step(hidden: int) -> Callable[[], float]:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(32, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(256, 32), torch.randn(256, 1)

    def step() -> float:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return float(loss)

    return step


def loop(steps: int, n_metrics: int, hidden: int, log: Callable[..., None] | None = None) -> float:
    step_fn = make_step(hidden)
    started = time.perf_counter()
    for i in range(steps):
        loss = step_fn()
        if log is not None:
            log({f"m{k}": loss + k for k in range(n_metrics)}, step=i)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64, help="MLP width: the cost of one step")
    parser.add_argument(
        "--gated",
        action="store_true",
        help="MLflow behind Kosmos's access rules (--app-name kosmos), as `make run` serves it",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="kosmos-bench-"))
    os.chdir(home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mlflow_port = s.getsockname()[1]
    # a real tracking server, as `make run` starts it: the store's work happens in its process
    mlflow_server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--artifacts-destination",
            str(home / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            *(["--app-name", "kosmos"] if args.gated else []),
        ],
        env={**os.environ, "KOSMOS_HOME": str(home)},  # the gate reads this platform's tokens
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tracking_uri = f"http://127.0.0.1:{mlflow_port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{tracking_uri}/health").status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    settings = Settings(
        home=home, mlflow={"tracking_uri": tracking_uri}, client={"url": f"http://127.0.0.1:{port}"}
    )
    token = bootstrap(settings).token
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    client = KosmosClient(token=token, settings=settings)
    sdk.register_dataset("demo", "bench", pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}), client=client)

    plain, tracked, flushed = [], [], []
    for _ in range(args.repeats):
        plain.append(loop(args.steps, args.metrics, args.hidden))
        with run("demo", "overhead", dataset="bench", settings=settings, client=client) as r:
            started = time.perf_counter()
            loop_seconds = loop(args.steps, args.metrics, args.hidden, r.log_metrics)
            r._metrics.close()  # every metric is stored before the clock stops
            tracked.append(loop_seconds)
            flushed.append(time.perf_counter() - started)
            r._metrics = metric_sink(r.client, r.run_id, tracking_uri)  # the run's exit closes one again
    server.should_exit = True
    mlflow_server.terminate()

    base, with_tracking = statistics.median(plain), statistics.median(tracked)
    overhead = (with_tracking - base) / base * 100
    print(
        f"\nTraining loop: MLP 32-{args.hidden}-1, {args.steps} steps, {args.metrics} metrics per step, "
        f"median of {args.repeats} runs"
    )
    print(f"{'variant':<30}{'seconds':>10}{'ms/step':>10}")
    print(f"{'no tracking':<30}{base:>10.3f}{base / args.steps * 1000:>10.3f}")
    print(f"{'Kosmos tracking':<30}{with_tracking:>10.3f}{with_tracking / args.steps * 1000:>10.3f}")
    print(f"{'overhead':<30}{overhead:>9.1f}%")
    drained = statistics.median(flushed)
    print(
        f"{'... until all metrics stored':<30}{drained:>10.3f}{drained / args.steps * 1000:>10.3f}"
        f"  ({args.steps * args.metrics:,} values)"
    )
    print(f"goal: <= 5% -> {'met' if overhead <= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
