"""Cold start: deploy to first successful prediction of a ~500 MB model, model cache cold vs. warm.

The platform's own MLflow server (artifacts proxied over HTTP, as `kosmos up` runs it)
and Ray head start in a temporary home. A pyfunc model whose ``load_context`` reads a
500 MB weights file is logged and registered. Then, per trial, a Kosmos ModelServer
replica is deployed on Ray Serve and the clock runs until its first prediction answers:

  cold  - the node-local model cache is empty: download from the artifact store, hash, load;
  warm  - the cache holds the version (what prefetch or an earlier replica left): load only.

    .venv/bin/python bench/cold_start.py [--mb 500] [--trials 3]

Goal (issue 5): warm at least 7x faster than cold (the figure Fluid reported).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from _platform import free_port


class BigWeights(mlflow.pyfunc.PythonModel):
    """A model whose load reads its whole weights file, as a large network's load would."""

    def load_context(self, context: Any) -> None:
        self.weights = np.fromfile(context.artifacts["weights"], dtype=np.float32)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        scale = float(self.weights[0]) if hasattr(self, "weights") else 1.0
        return model_input["x"].to_numpy(dtype="float64") * scale


def _log_big_model(home: Path, mb: int) -> None:
    weights = home / "weights.bin"
    rng = np.random.default_rng(0)
    with weights.open("wb") as f:
        for _ in range(mb):
            f.write(rng.random(1 << 18, dtype=np.float32).tobytes())  # 1 MiB per chunk
    example = pd.DataFrame({"x": [1.0, 2.0]})
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=BigWeights(),
            artifacts={"weights": str(weights)},
            input_example=example,
        )
    mlflow.register_model(info.model_uri, "bench.big")
    weights.unlink()


def _deploy_and_predict(settings: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    from ray import serve

    from kosmos.deployment.serving import ModelServer

    started = time.perf_counter()
    handle = serve.run(
        ModelServer.options(name="model", ray_actor_options={"num_cpus": 0.5}).bind(
            settings, "bench", "big", 1
        ),
        name="big",
        route_prefix=None,
    )
    answer = handle.predict.remote([{"x": 2.0}]).result(timeout_s=600)
    seconds = time.perf_counter() - started
    assert "predictions" in answer, answer
    info = handle.describe.remote().result()
    serve.delete("big")
    return seconds, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=500, help="size of the model's weights file")
    parser.add_argument("--trials", type=int, default=3, help="cold and warm deploys each")
    args = parser.parse_args()
    import ray
    from ray import serve

    from kosmos.platform.embedded import core_services
    from kosmos.platform.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="kosmos-bench-cold-"))
    settings = Settings(home=home, mlflow={"port": free_port()}, ray={"gcs_port": free_port(), "num_cpus": 2})
    processes = []
    try:
        for service in core_services(settings):
            if service.name in ("MLflow", "Ray"):
                log = (home / f"{service.name}.log").open("wb")
                processes.append(
                    subprocess.Popen(service.command, stdout=log, stderr=subprocess.STDOUT, cwd=home)
                )
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        deadline = time.monotonic() + 180
        while True:
            try:
                mlflow.search_experiments(max_results=1)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        _log_big_model(home, args.mb)
        ray.init(address=f"127.0.0.1:{settings.ray.gcs_port}", log_to_driver=False)
        serve.start(proxy_location="Disabled")
        payload = settings.model_dump(mode="json")
        _deploy_and_predict(payload)  # Serve's own first-deployment costs stay out of the trials
        rows: dict[str, list[tuple[float, dict[str, Any]]]] = {"cold": [], "warm": []}
        for _ in range(args.trials):
            shutil.rmtree(home / "model-cache", ignore_errors=True)
            rows["cold"].append(_deploy_and_predict(payload))
            rows["warm"].append(_deploy_and_predict(payload))
        assert all(info["cache"] == kind for kind in rows for _, info in rows[kind])
    finally:
        ray.shutdown()
        for process in processes:  # `ray start --block` stops its node on SIGTERM
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
        shutil.rmtree(home, ignore_errors=True)

    def median(kind: str, pick: Any) -> float:
        return statistics.median(pick(seconds, info) for seconds, info in rows[kind])

    total = {k: median(k, lambda s, _i: s) for k in rows}
    fetch = {k: median(k, lambda _s, i: i["fetch_seconds"]) for k in rows}
    load = {k: median(k, lambda _s, i: i["load_seconds"]) for k in rows}
    print(f"\ncold start, {args.mb} MB model, median of {args.trials} deploys each, {os.cpu_count()} cores")
    print(f"{'cache':<6} {'deploy->first prediction s':>27} {'cache fetch s':>14} {'model load s':>13}")
    for kind in ("cold", "warm"):
        print(f"{kind:<6} {total[kind]:>27.2f} {fetch[kind]:>14.2f} {load[kind]:>13.2f}")
    print(
        f"warm vs cold: {total['cold'] / total['warm']:.2f}x faster deploy->first prediction, "
        f"{(fetch['cold'] + load['cold']) / (fetch['warm'] + load['warm']):.2f}x faster fetch+load"
    )
    print("goal: warm >= 7x faster than cold")


if __name__ == "__main__":
    main()
