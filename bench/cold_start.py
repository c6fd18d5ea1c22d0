"""Cold start through the real reconciler: deployment create -> first prediction, model cache
cold vs. warm, for a ~500 MB tabular model and the default LLM.

`kosmos up` runs in a temporary home (its MLflow server proxies artifacts over HTTP, its
reconciler drives Ray Serve; no demo). A pyfunc model whose ``load_context`` reads a 500 MB
weights file is logged and registered through Kosmos, and so is the packaged SmolLM2. Per
trial a new deployment is created over the REST API and the clock runs until the data plane
answers a prediction (or a chat completion) with 200:

  cold  - the node's model cache is empty and the OS page cache holds none of the home's files
          (dropped with posix_fadvise): prefetch downloads, hashes and verifies, then the replica
          starts and loads;
  warm  - the cache holds the version (what the prefetch of an earlier rollout left), page cache
          dropped again: the replica verifies the checksum and loads from the node's disk.

    .venv/bin/python bench/cold_start.py [--mb 500] [--trials 3] [--llm-trials 2] [--weights copy|mmap]

Goal (issue 23): warm at least 7x faster than cold (the figure Fluid reported).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from _platform import free_port, start_platform


class CopiedWeights(mlflow.pyfunc.PythonModel):
    """A model whose load reads its whole weights file into memory, as most pickled models do."""

    def load_context(self, context: Any) -> None:
        self.weights = np.fromfile(context.artifacts["weights"], dtype=np.float32)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return model_input["x"].to_numpy(dtype="float64") * float(self.weights[0])

    def __getstate__(self) -> dict[str, Any]:  # the weights are the artifact, not part of the pickle
        return {}


class MappedWeights(CopiedWeights):
    """The same weights mapped, not copied (what safetensors and numpy's mmap_mode give)."""

    def load_context(self, context: Any) -> None:
        self.weights = np.memmap(context.artifacts["weights"], dtype=np.float32, mode="r")


def drop_page_cache(root: Path) -> None:
    """Evict every file under ``root`` from the OS page cache (no root needed: clean pages only)."""
    os.sync()
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _register_big(platform: Any, mb: int, weights_kind: str) -> None:
    from kosmos.platform.client import KosmosClient
    from kosmos.platform.settings import Settings
    from kosmos.training import sdk as training
    from kosmos.training.tracking import run

    weights = platform.home / "weights.bin"
    rng = np.random.default_rng(0)
    with weights.open("wb") as f:
        for _ in range(mb):
            f.write(rng.random(1 << 18, dtype=np.float32).tobytes())  # 1 MiB per chunk
    model = MappedWeights() if weights_kind == "mmap" else CopiedWeights()
    settings = Settings(home=platform.home, mlflow={"port": platform.mlflow_port})
    with KosmosClient(url=platform.url, token=platform.token) as client:
        with run("demo", "cold-start", settings=settings, client=client) as r:
            r.log_weights_source("bench/cold_start.py: seeded random weights")  # lineage without a dataset
            mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                artifacts={"weights": str(weights)},
                input_example=pd.DataFrame({"x": [1.0, 2.0]}),
                pip_requirements=["mlflow", "numpy", "pandas"],
            )
        training.register_model("demo", "big", r.run_id, client=client)
    weights.unlink()


def _register_llm(platform: Any) -> None:
    from kosmos.genai.demo import register_default_llm
    from kosmos.platform.client import KosmosClient
    from kosmos.platform.settings import Settings

    settings = Settings(home=platform.home, mlflow={"port": platform.mlflow_port})
    with KosmosClient(url=platform.url, token=platform.token) as client:
        register_default_llm(settings, client)


def _wait_gone(api: httpx.Client, name: str) -> None:
    deadline = time.monotonic() + 180
    while api.get(f"/api/v1/projects/demo/deployments/{name}").status_code != 404:
        assert time.monotonic() < deadline, f"{name} was not deleted"
        time.sleep(0.5)
    time.sleep(8)  # Serve tears the replica down after the record is gone: let it leave the cores


def _trial(platform: Any, api: httpx.Client, name: str, body: dict[str, Any], ask: Any) -> dict[str, Any]:
    started = time.perf_counter()
    created = api.post("/api/v1/projects/demo/deployments", json={"name": name, **body})
    assert created.status_code < 300, created.text
    deadline = time.monotonic() + 900
    waited_prefetch = False
    while True:
        response = ask(name)
        if response.status_code == 200:
            break
        state = api.get(f"/api/v1/projects/demo/deployments/{name}").json()
        waited_prefetch |= "caches" in (state.get("reason") or "")
        assert state["status"] != "failed", state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    info: dict[str, Any] = {}
    described = time.monotonic() + 30  # the reconciler's next pass records how the replica loaded
    while not info and time.monotonic() < described:
        state = api.get(f"/api/v1/projects/demo/deployments/{name}").json()
        info = (state.get("details") or {}).get("versions", {}).get(str(state["stable_version"]), {})
        time.sleep(0.5)
    api.delete(f"/api/v1/projects/demo/deployments/{name}")
    _wait_gone(api, name)
    return {"seconds": seconds, "info": info, "waited_prefetch": waited_prefetch}


def _series(platform: Any, api: httpx.Client, label: str, body: dict, ask: Any, trials: int) -> dict:
    rows: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    for trial in range(trials):
        shutil.rmtree(platform.home / "model-cache" / "blobs", ignore_errors=True)
        shutil.rmtree(platform.home / "model-cache" / "index", ignore_errors=True)
        drop_page_cache(platform.home)
        rows["cold"].append(_trial(platform, api, f"{label}-cold-{trial}", body, ask))
        drop_page_cache(platform.home)
        rows["warm"].append(_trial(platform, api, f"{label}-warm-{trial}", body, ask))
    return rows


def _print(title: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    def median(kind: str, key: str) -> float:
        values = [r["seconds"] if key == "seconds" else r["info"].get(key, float("nan")) for r in rows[kind]]
        return statistics.median(values)

    print(f"\n{title}, median of {len(rows['cold'])} deploys each, {os.cpu_count()} cores")
    head = f"{'cache':<6} {'create->first answer s':>23} {'fetch s':>8} {'verify s':>9} {'load s':>7}"
    print(f"{head}  trials s")
    for kind in ("cold", "warm"):
        trials = ", ".join(f"{r['seconds']:.1f}" for r in rows[kind])
        print(
            f"{kind:<6} {median(kind, 'seconds'):>23.2f} {median(kind, 'fetch_seconds'):>8.2f} "
            f"{median(kind, 'verify_seconds'):>9.2f} {median(kind, 'load_seconds'):>7.2f}  {trials}"
        )
    ratio = median("cold", "seconds") / median("warm", "seconds")
    print(f"warm vs cold: {ratio:.2f}x faster create->first answer (goal: >= 7x)")
    kinds = {r["info"].get("cache") for kind in rows for r in rows[kind]}
    print(f"replicas' cache on load: {sorted(map(str, kinds))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=500, help="size of the tabular model's weights file")
    parser.add_argument("--trials", type=int, default=3, help="cold and warm deploys each (tabular)")
    parser.add_argument("--llm-trials", type=int, default=2, help="cold and warm deploys each (LLM; 0: skip)")
    parser.add_argument("--weights", choices=["copy", "mmap"], default="copy", help="how the model loads")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="kosmos-bench-cold-"))
    platform = start_platform(home, KOSMOS_DEPLOYMENT__DEMO="false", KOSMOS_RAY__SERVE_PORT=str(free_port()))
    os.environ["MLFLOW_TRACKING_TOKEN"] = platform.token
    mlflow.set_tracking_uri(f"http://127.0.0.1:{platform.mlflow_port}")
    dataplane = f"http://127.0.0.1:{platform.env['KOSMOS_RAY__SERVE_PORT']}"
    try:
        api = httpx.Client(base_url=platform.url, headers=platform.headers, timeout=60)
        data = httpx.Client(base_url=dataplane, headers=platform.headers, timeout=120)

        def predict(name: str) -> httpx.Response:
            try:
                return data.post(f"/demo/{name}/predict", json={"inputs": [{"x": 2.0}]})
            except httpx.HTTPError:
                return httpx.Response(599)

        def chat(name: str) -> httpx.Response:
            try:
                body = {"model": name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
                return data.post("/demo/openai/v1/chat/completions", json=body)
            except httpx.HTTPError:
                return httpx.Response(599)

        _register_big(platform, args.mb, args.weights)
        _trial(platform, api, "big-first", {"model": "big", "version": "1"}, predict)  # Serve's own first
        tabular = _series(platform, api, "big", {"model": "big", "version": "1"}, predict, args.trials)
        llm = None
        if args.llm_trials:
            from kosmos.genai.demo import DEMO_LLM_SPEC, MODEL

            _register_llm(platform)
            body = {"model": MODEL, "version": "champion", "llm": DEMO_LLM_SPEC, "num_cpus": 0.25}
            llm = _series(platform, api, "llm", body, chat, args.llm_trials)
    finally:
        platform.stop()
        shutil.rmtree(home, ignore_errors=True)
    _print(f"cold start through the reconciler, {args.mb} MB tabular model ({args.weights} load)", tabular)
    if llm:
        _print("cold start through the reconciler, SmolLM2-135M (default engine)", llm)


if __name__ == "__main__":
    main()
