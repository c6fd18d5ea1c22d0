"""Online feature serving: Feast directly, Feast's HTTP feature server, and Kosmos, on Redis.

One entity lookup (a user and a merchant), 11 features from 2 feature views,
2,000 requests at concurrency 8, through
  (a) the Feast SDK in-process;
  (b) POST /api/v1/projects/{p}/features/online on a real control-plane process;
  (c) Feast's own HTTP feature server (`feast serve`) on the same repository and Redis, at
      its best settings here (no access log, no worker recycling; 1 and 2 workers);
  (d) POST /{p}/features/online on Kosmos's data plane (Ray Serve's ingress, one replica).
Then materialization throughput for 1M transactions.

    .venv/bin/python bench/feature_serving.py [--requests 2000] [--concurrency 8] [--rows 1000000]
        [--paths a,b,c,d] (some of the lookup paths; --rows 0 skips materialization)

Needs Redis on 127.0.0.1:6379. Goals: issue 3: b - a <= 1 ms at p50, b's p99 <= 10 ms;
issue 17: (d) throughput >= the best (c), and (d) p99 <= its p99.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from kosmos.features.demo import generate, write
from kosmos.features.repo import FeatureRepo
from kosmos.features.runs import compute_offline
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.context import CallContext
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import User
from kosmos.platform.identity import service
from kosmos.platform.identity.access import Principal
from kosmos.platform.settings import Settings

FEATURES = [
    f"user_transaction_stats:{f}"
    for f in (
        "txn_count_1h",
        "txn_count_24h",
        "txn_count_7d",
        "spend_1h",
        "spend_24h",
        "spend_7d",
        "avg_amount_7d",
        "foreign_ratio_7d",
    )
] + ["merchant_stats:merchant_txn_count_30d", "merchant_stats:merchant_fraud_rate_30d"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_load(call, requests: int, concurrency: int) -> list[float]:
    """Latencies in ms of ``requests`` calls spread over ``concurrency`` threads."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = requests // concurrency

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local = []
        state = call.__call__ if not hasattr(call, "per_thread") else call.per_thread()
        for _ in range(per_thread):
            started = time.perf_counter()
            state(rng.randint(1, 2000), rng.randint(1, 500))
            local.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(local)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    return latencies


_servers: dict[str, subprocess.Popen] = {}


def start_feast_server(repo: FeatureRepo, workers: int) -> str:
    """`feast serve` on the repository: no access log, workers never recycled mid-run."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "feast"), "-c", str(repo.path), "serve", "-h", "127.0.0.1",
         "-p", str(port), "-w", str(workers), "--no-access-log", "--max-requests", "1000000",
         "--registry_ttl_sec", "600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    _servers[url] = process
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("feast serve did not start")
        time.sleep(0.5)


def stop(url: str) -> None:
    process = _servers.pop(url)
    os.killpg(process.pid, 15)
    process.wait(timeout=30)


@contextmanager
def dataplane(settings: Settings) -> Iterator[str]:
    """A Ray head of its own, with the data plane deployed as the reconciler deploys it."""
    import ray
    from ray import serve

    from kosmos.deployment.dataplane import dataplane_target
    from kosmos.platform.ray_cluster import head_command, serve_env

    gcs, port = free_port(), free_port()
    ports = {"haproxy_stats_port": free_port(), "haproxy_metrics_port": free_port()}
    ingress = serve_env(
        settings.model_copy(update={"dataplane": settings.dataplane.model_copy(update=ports)})
    )
    head = subprocess.Popen(  # the data plane's ingress as shipped: HAProxy, gRPC between deployments
        head_command(gcs, num_cpus=2),
        env={**os.environ, **ingress},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(120):
            try:
                ray.init(address=f"127.0.0.1:{gcs}", namespace="kosmos", log_to_driver=False)
                break
            except (ConnectionError, RuntimeError):
                time.sleep(1)
        plane = settings.model_copy(update={"ray": settings.ray.model_copy(update={"serve_port": port})})
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run_many([dataplane_target(plane, "bench")], wait_for_applications_running=True)
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()  # stops HAProxy, which would outlive the head
        ray.shutdown()
        os.killpg(head.pid, 15)
        head.wait(timeout=60)


def http_load(url: str, path: str, body: dict, headers: dict, args: argparse.Namespace) -> list[float]:
    """Latencies of POSTing ``body`` (with a random user and merchant) to ``url + path``."""

    class Http:
        def per_thread(self):
            http = httpx.Client(base_url=url, headers=headers)

            def call(user: int, merchant: int) -> None:
                response = http.post(
                    path, json={**body, "entities": {"user_id": [user], "merchant_id": [merchant]}}
                )
                response.raise_for_status()

            return call

    warm = Http().per_thread()
    for _ in range(50):
        warm(1, 1)
    return run_load(Http(), args.requests, args.concurrency)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def control_plane_route(
    settings: Settings, project: str, token: str, args: argparse.Namespace
) -> list[float]:
    """(b): the control plane's REST route, on a real control-plane process."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "kosmos.platform.api"],
        env={**os.environ, "KOSMOS_SERVER__PORT": str(port), "KOSMOS_LOG_LEVEL": "WARNING"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        class Rest:
            def per_thread(self):
                http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})

                def call(user: int, merchant: int) -> None:
                    r = http.post(
                        f"/api/v1/projects/{project}/features/online",
                        json={
                            "features": FEATURES,
                            "entities": {"user_id": [user], "merchant_id": [merchant]},
                        },
                    )
                    r.raise_for_status()

                return call

        warm = Rest().per_thread()
        for _ in range(50):
            warm(1, 1)
        return run_load(Rest(), args.requests, args.concurrency)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--paths", default="a,b,c,d", help="which lookup paths to run")
    args = parser.parse_args()
    paths = set(args.paths.split(","))

    home = Path(tempfile.mkdtemp(prefix="kosmos-bench-"))
    project = f"bench-{uuid.uuid4().hex[:8]}"
    env_settings = {
        "KOSMOS_HOME": str(home),
        "KOSMOS_REDIS__URL": "redis://127.0.0.1:6379/0",
        "KOSMOS_FEATURES__ONLINE_STORE": "redis",
    }
    os.environ.update(env_settings)
    settings = Settings()
    token = bootstrap(settings).token
    database = Database(settings.database_url)
    with database.transaction() as session:  # the bench's project, as `kosmos project create` makes it
        admin = session.scalar(select(User).where(User.is_admin))
        ctx = CallContext(session, Principal(user_id=admin.id, user_name=admin.name, is_admin=True))
        service.create_project(ctx, project, "risk")
    database.dispose()

    repo = FeatureRepo(settings, project)
    repo.init(template="fraud")
    write(generate(rows=100_000), repo.tables_dir)
    repo.apply()
    compute_offline(repo)
    repo.store().materialize_incremental(end_date=datetime.now(UTC))
    store = repo.store()

    def feast_direct(user: int, merchant: int) -> None:
        store.get_online_features(features=FEATURES, entity_rows=[{"user_id": user, "merchant_id": merchant}])

    rows: list[tuple[str, list[float]]] = []
    if "a" in paths:
        for _ in range(50):
            feast_direct(1, 1)
        rows.append(("(a) Feast SDK direct", run_load(feast_direct, args.requests, args.concurrency)))
    if "b" in paths:
        rows.append(("(b) Kosmos REST route", control_plane_route(settings, project, token, args)))
    body = {"features": FEATURES}
    for workers in (1, 2) if "c" in paths else ():
        feast_url = start_feast_server(repo, workers)
        try:
            rows.append(
                (
                    f"(c) feast serve -w {workers}",
                    http_load(feast_url, "/get-online-features", body, {}, args),
                )
            )
        finally:
            stop(feast_url)
    if "d" in paths:
        with dataplane(settings) as plane:
            path = f"/{project}/features/online"
            headers = {"Authorization": f"Bearer {token}"}
            rows.append(("(d) Kosmos data plane", http_load(plane, path, body, headers, args)))
    print(
        f"\nOnline lookup: 1 user + 1 merchant, {len(FEATURES)} features from 2 views, Redis, "
        f"{args.requests} requests at concurrency {args.concurrency}"
    )
    print(f"{'path':<24}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'req/s':>9}")
    for name, lat in rows:
        rps = len(lat) / (sum(lat) / 1000 / args.concurrency)
        print(
            f"{name:<24}{percentile(lat, 50):>9.2f}{percentile(lat, 99):>9.2f}"
            f"{statistics.mean(lat):>9.2f}{rps:>9.0f}"
        )
    measured = dict(rows)
    if "(a) Feast SDK direct" in measured and "(b) Kosmos REST route" in measured:
        direct, rest = measured["(a) Feast SDK direct"], measured["(b) Kosmos REST route"]
        d50 = percentile(rest, 50) - percentile(direct, 50)
        d99 = percentile(rest, 99) - percentile(direct, 99)
        print(f"{'b - a':<24}{d50:>9.2f}{d99:>9.2f}")
        print(
            f"goal: b - a <= 1 ms at p50 -> {'met' if d50 <= 1 else 'NOT met'}; "
            f"b p99 <= 10 ms -> {'met' if percentile(rest, 99) <= 10 else 'NOT met'}"
        )
    if args.rows <= 0:
        repo.store().teardown()
        return
    big = FeatureRepo(settings, f"{project}-1m")
    big.init(template="fraud")
    started = time.perf_counter()
    write(generate(rows=args.rows), big.tables_dir)
    generated = time.perf_counter() - started
    big.apply()
    started = time.perf_counter()
    offline_rows = compute_offline(big)
    computed = time.perf_counter() - started
    started = time.perf_counter()
    big.store().materialize_incremental(end_date=datetime.now(UTC))
    materialized = time.perf_counter() - started
    total = sum(offline_rows.values())
    print(f"\nMaterialization, {args.rows:,} transactions -> {total:,} offline feature rows")
    print(f"{'step':<34}{'seconds':>9}{'rows/s':>12}")
    print(f"{'generate raw data':<34}{generated:>9.1f}{args.rows / generated:>12,.0f}")
    print(f"{'pipelines (windowed aggregates)':<34}{computed:>9.1f}{args.rows / computed:>12,.0f}")
    print(f"{'materialize_incremental -> Redis':<34}{materialized:>9.1f}{total / materialized:>12,.0f}")
    for r in (repo, big):
        r.store().teardown()


if __name__ == "__main__":
    main()
