"""Online inference: `mlflow models serve -w 2` vs. the Kosmos endpoint, without and with features.

The demo fraud model (what `make run` trains), 32 concurrent clients, one-row requests:
  (a) `mlflow models serve -w 2` on the same registered model (all features in the request);
  (b) the Kosmos endpoint, no feature lookup (all features in the request);
  (c) the Kosmos endpoint, features looked up online from Redis (keys + amount in the request).
The platform runs as `kosmos up` would start it (control plane, MLflow, Ray, reconciler), with
Feast's online store on Redis. The load comes from a separate process.

    .venv/bin/python bench/online_inference.py [--seconds 30] [--concurrency 32]

Goal (issue 5): (b) >= 1.5x the throughput of (a); (c) p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _platform import free_port, start_platform


async def _load(url: str, bodies: list[dict], headers: dict, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=bodies[i % len(bodies)])
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    errors += 1
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] if latencies else float("nan")
        )

    return {"rps": len(latencies) / seconds, "p50": pct(50), "p99": pct(99), "errors": errors}


def _load_process(args: tuple) -> dict:
    return asyncio.run(_load(*args))


def load(url: str, bodies: list[dict], headers: dict, seconds: float, concurrency: int) -> dict:
    """Run the load from another process, so the client never competes for this one's GIL."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_load_process, ((url, bodies, headers, seconds, concurrency),))


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer:\n{log.read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="kosmos-bench-"))
    serve_port = free_port()
    platform = start_platform(
        home,
        KOSMOS_REDIS__URL=os.environ.get("KOSMOS_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
        KOSMOS_FEATURES__ONLINE_STORE="redis",
        KOSMOS_FEATURES__MATERIALIZE_EVERY_MINUTES="0",
    )
    env, mlflow_port, headers = platform.env, platform.mlflow_port, platform.headers
    mlflow_serve = None
    try:
        base = f"{platform.url}/api/v1/projects/demo/deployments"
        model = httpx.get(
            f"{platform.url}/api/v1/projects/demo/models/fraud-detector", headers=headers
        ).json()
        version = model["aliases"]["champion"]
        spec = {
            "name": "fraud-nofeatures",
            "model": "fraud-detector",
            "version": str(version),
            "log_sample_rate": 0,
        }
        httpx.post(base, json=spec, headers=headers).raise_for_status()
        for name in ("fraud-detector", "fraud-nofeatures"):
            while httpx.get(f"{base}/{name}", headers=headers).json()["status"] != "healthy":
                time.sleep(1)
        # one-row requests: full feature rows for (a) and (b), keys + amount for (c)
        keyed = [
            {"user_id": u, "merchant_id": m, "amount": 10.0 + u % 90}
            for u, m in zip(range(1, 201), range(1, 201), strict=True)
        ]
        online = httpx.post(
            f"{platform.url}/api/v1/projects/demo/features/online",
            json={
                "feature_service": "fraud_detection_v1",
                "entities": {
                    "user_id": [r["user_id"] for r in keyed],
                    "merchant_id": [r["merchant_id"] for r in keyed],
                },
                "request_data": {"amount": [r["amount"] for r in keyed]},
            },
            headers=headers,
        ).json()
        drop = {"user_id", "merchant_id"}
        full = [{k: online[k][i] for k in online if k not in drop} for i in range(len(keyed))]
        for row, k in zip(full, keyed, strict=True):
            row["amount"] = k["amount"]
            for key, value in row.items():
                if value is None:
                    row[key] = 0.0
        mlflow_env = {  # mlflow models serve execs `uvicorn` from PATH: give it this venv's
            **env,
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
        mlflow_serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                f"models:/demo.fraud-detector/{version}",
                "-w",
                "2",
                "-p",
                str(serve_port),
                "--env-manager",
                "local",
            ],
            env=mlflow_env,
            stdout=(home / "mlflow-serve.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"http://127.0.0.1:{serve_port}/ping", mlflow_serve, home / "mlflow-serve.log")
        cases = {
            "(a) mlflow models serve -w 2": (
                f"http://127.0.0.1:{serve_port}/invocations",
                [{"dataframe_records": [r]} for r in full],
                {},
            ),
            "(b) Kosmos, no feature lookup": (
                f"{base}/fraud-nofeatures/predict",
                [{"inputs": [r]} for r in full],
                headers,
            ),
            "(c) Kosmos, features from Redis": (
                f"{base}/fraud-detector/predict",
                [{"inputs": [r]} for r in keyed],
                headers,
            ),
        }
        results = {}
        for label, (url, bodies, hdrs) in cases.items():
            load(url, bodies, hdrs, 3, args.concurrency)  # warm up
            results[label] = load(url, bodies, hdrs, args.seconds, args.concurrency)
        reference = results["(a) mlflow models serve -w 2"]["rps"]
        print(
            f"\nonline inference, {args.concurrency} concurrent clients, "
            f"{args.seconds:.0f} s each, one-row requests"
        )
        print(f"{'case':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs (a)':>7}")
        for label, r in results.items():
            ratio = r["rps"] / reference
            print(
                f"{label:<34} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
                f"{r['errors']:>7} {ratio:>6.2f}x"
            )
        print("goals: (b) >= 1.50x (a) throughput; (c) p99 <= 50 ms")
    finally:
        if mlflow_serve is not None and mlflow_serve.poll() is None:
            os.killpg(mlflow_serve.pid, signal.SIGTERM)
        platform.stop()


if __name__ == "__main__":
    main()
