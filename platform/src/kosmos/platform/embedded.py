"""`kosmos up` (what `make run` starts): the whole platform, embedded, in the foreground.

It starts the control plane, an MLflow tracking server on the embedded store, a
local Ray head node, and each plugin's embedded services (the web UI), waits
until each answers, prints their URLs, and stops all of them on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from kosmos.platform import heartbeats
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.db.engine import Database
from kosmos.platform.mlflow_access import service_env
from kosmos.platform.plugins import EmbeddedService, StartupRefused, bootstrap_order, installed_plugins
from kosmos.platform.ray_cluster import auth_env, head_command, serve_env
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 180.0


@dataclass
class _Running:
    service: EmbeddedService
    process: subprocess.Popen[bytes]
    log_path: Path


def core_services(settings: Settings) -> list[EmbeddedService]:
    """The platform's own processes, less those configured to live elsewhere."""
    py = sys.executable
    services = [
        EmbeddedService(
            name="control plane",
            command=[py, "-m", "kosmos.platform.api"],
            url=f"{settings.api_url}/healthz",
        )
    ]
    if settings.mlflow.tracking_uri is None:
        Path(settings.mlflow_artifacts_destination).mkdir(parents=True, exist_ok=True)
        (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
        services.append(
            EmbeddedService(
                name="MLflow",
                command=[
                    py,
                    "-m",
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    settings.mlflow_backend_store_uri,
                    "--artifacts-destination",
                    settings.mlflow_artifacts_destination,
                    "--host",
                    settings.mlflow.host,
                    "--port",
                    str(settings.mlflow.port),
                    "--app-name",
                    "kosmos",  # behind Kosmos's access rules (kosmos.platform.mlflow_gate)
                    "--workers",
                    "2",
                ],
                url=settings.mlflow_tracking_uri,
            )
        )
    if settings.ray.address is None:
        command = head_command(settings.ray.gcs_port, num_cpus=settings.ray.num_cpus)
        services.append(
            EmbeddedService(
                name="Ray",
                command=command,
                url=f"tcp://127.0.0.1:{settings.ray.gcs_port}",
                env=serve_env(settings) | auth_env(settings),
            )
        )
    return services


def _child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["KOSMOS_HOME"] = str(settings.home)
    env.setdefault("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    env |= service_env(settings)
    env |= auth_env(settings)  # before RAY_ADDRESS: the local instance's token, or the configured one
    if settings.ray.address is None:
        env.setdefault("RAY_ADDRESS", f"127.0.0.1:{settings.ray.gcs_port}")
    return env


def _answers(http: httpx.Client, url: str) -> bool:
    """An HTTP URL answers below 500; a tcp://host:port URL accepts a connection."""
    try:
        if url.startswith("tcp://"):
            host, port = url.removeprefix("tcp://").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=2):
                return True
        return http.get(url).status_code < 500
    except (OSError, httpx.HTTPError):
        return False


def _wait_ready(running: list[_Running], deadline: float, stopping: Callable[[], bool]) -> None:
    pending = [r for r in running if r.service.url]
    with httpx.Client(timeout=2.0) as http:
        while pending and not stopping():
            for r in list(pending):
                if r.process.poll() is not None:
                    raise RuntimeError(
                        f"{r.service.name} exited with {r.process.returncode}; see {r.log_path}"
                    )
                if _answers(http, r.service.url):  # type: ignore[arg-type]
                    pending.remove(r)
            if time.monotonic() > deadline:
                names = ", ".join(r.service.name for r in pending)
                raise RuntimeError(f"timed out waiting for {names}")
            time.sleep(0.3)


STOP_BUDGET_S = 12.0
"""How long Ctrl-C may take: every service but Ray stops at once, then Ray (the reconciler stops
Ray Serve and its HAProxy first, within ``deployment.reconciler``'s own bound)."""
RAY_STOP_S = 3.0


def _stop(running: list[_Running]) -> None:
    """Stop every service at once but the Ray head, which the others use while they stop (the
    reconciler shuts Ray Serve down); then Ray. Whatever outlives its share of ``STOP_BUDGET_S``
    is killed with its process group. Nothing is lost by a kill: the metadata database commits
    each change, and the reconciler rebuilds Ray Serve from it on the next start."""
    head = [r for r in running if r.service.name == "Ray"]
    others = [r for r in running if r not in head]
    for wave, budget in ((others, STOP_BUDGET_S - RAY_STOP_S), (head, RAY_STOP_S)):
        live = [r for r in wave if r.process.poll() is None]
        for r in live:
            r.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + budget
        for r in live:
            try:
                r.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killed", r.service.name, budget)
            with contextlib.suppress(ProcessLookupError):  # and what it left behind (Ray's HAProxy)
                os.killpg(r.process.pid, signal.SIGKILL)
            r.process.wait()


def run_embedded(settings: Settings) -> int:
    """Start everything, print where it is, block until Ctrl-C or a child dies."""
    os.environ.update(service_env(settings))  # this process trains and registers the demo
    result = bootstrap(settings)
    services = core_services(settings)
    plugins = [installed.plugin for installed in installed_plugins()]
    for plugin in plugins:
        if plugin.embedded_services is not None:
            services += plugin.embedded_services(settings)

    logs_dir = settings.home / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    env = _child_env(settings)
    running: list[_Running] = []
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for service in services:
            log_path = logs_dir / f"{service.name.lower().replace(' ', '-')}.log"
            with log_path.open("ab") as out:
                process = subprocess.Popen(
                    service.command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**env, **service.env},
                    start_new_session=True,
                )
            running.append(_Running(service, process, log_path))
            print(f"starting {service.name} (log: {log_path})", flush=True)
        _wait_ready(running, time.monotonic() + STARTUP_TIMEOUT_S, lambda: stop_requested)
        for plugin in bootstrap_order(plugins):
            if plugin.bootstrap is not None and not stop_requested:
                print(f"preparing {plugin.name} ...", flush=True)
                try:
                    plugin.bootstrap(settings)
                except StartupRefused:
                    raise
                except Exception as exc:  # demo content is optional; the platform itself is up
                    log.exception("preparing %s failed", plugin.name)
                    print(
                        f"warning: preparing {plugin.name} failed: {exc}; the platform keeps running "
                        f"(details in the log above)",
                        file=sys.stderr,
                        flush=True,
                    )
        if not stop_requested:
            _print_summary(settings, running, result.token)
        watch = _HeartbeatWatch(settings)
        while not stop_requested:
            watch.report()
            for r in running:
                if r.process.poll() is not None:
                    print(
                        f"{r.service.name} exited with {r.process.returncode}; see {r.log_path}. "
                        "Stopping the platform.",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
            time.sleep(0.5)
        print("stopping Kosmos ...", flush=True)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        _stop(running)


class _HeartbeatWatch:
    """Says on the console when a background service (the reconciler) starts or stops failing."""

    EVERY_S = 5.0

    def __init__(self, settings: Settings) -> None:
        self.database = Database(settings.database_url)
        self.shown: dict[str, str] = {}
        self.next_at = time.monotonic() + self.EVERY_S

    def report(self) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.EVERY_S
        try:
            found = heartbeats.problems(self.database)
        except Exception:  # the database's own trouble shows in the control plane's log
            return
        for name, problem in found.items():
            if self.shown.get(name) != problem.cause:
                print(f"warning: {name}: {problem}", file=sys.stderr, flush=True)
                self.shown[name] = problem.cause
        for name in [n for n in self.shown if n not in found]:
            print(f"{name} is working again", file=sys.stderr, flush=True)
            del self.shown[name]


def _print_summary(settings: Settings, running: list[_Running], token: str | None) -> None:
    lines = ["", "Kosmos is running (Ctrl-C stops everything):"]
    lines.append(f"  control plane   {settings.api_url}  (API docs: {settings.api_url}/docs)")
    lines.append(
        f"  data plane      {settings.dataplane_url}  (predict, online features, OpenAI API: "
        f"{settings.dataplane_url}/<project>/...)"
    )
    for r in running:
        if r.service.url and r.service.url.startswith("http") and r.service.name != "control plane":
            lines.append(f"  {r.service.name:<15} {r.service.url}")
    if settings.ray.address is None:
        lines.append(
            f"  Ray             ray://127.0.0.1:10001 (RAY_ADDRESS=127.0.0.1:{settings.ray.gcs_port})"
        )
    lines.append(f"  state           {settings.home}")
    if token:
        lines += ["", "Admin token (shown once; also saved for the CLI):", f"  {token}"]
    else:
        lines += ["", f"The admin token is saved in {settings.credentials_path}."]
    lines += ["", "Try:  .venv/bin/kosmos projects list", ""]
    print("\n".join(lines), flush=True)
