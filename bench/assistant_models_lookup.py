"""The assistant's models lookup: show_model (every version's run) vs only the aliased versions.

.venv/bin/python bench/assistant_models_lookup.py
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from kosmos.platform.settings import Settings
from kosmos.training import registry
from kosmos.training.tracking import TAG_PROJECT

home = Path(tempfile.mkdtemp())
uri = f"sqlite:///{home}/mlflow.db"
os.chdir(home)
settings = Settings(home=home, mlflow={"tracking_uri": uri})
mlflow.set_tracking_uri(uri)
client = MlflowClient(uri, registry_uri=uri)
N = 30
client.create_registered_model("demo.m", tags={TAG_PROJECT: "demo"})
exp = client.create_experiment("demo/x")
for i in range(N):
    run = client.create_run(exp, tags={TAG_PROJECT: "demo"})
    client.log_metric(run.info.run_id, "roc_auc", 0.8 + i / 1000)
    client.create_model_version("demo.m", f"runs:/{run.info.run_id}/model", run.info.run_id)
client.set_registered_model_alias("demo.m", "champion", str(N))
client.set_registered_model_alias("demo.m", "challenger", str(N - 1))


def old():
    for m in registry.list_models(settings, "demo"):
        registry.show_model(settings, "demo", m["name"])


def new():
    for m in registry.list_models(settings, "demo"):
        for alias in ("champion", "challenger"):
            registry.version_metrics(settings, "demo", m["name"], m["aliases"][alias])


for name, fn in (("show_model (before)", old), ("aliased versions only (after)", new)):
    fn()
    times = []
    for _ in range(10):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    print(f"{name:<32} p50 {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms  ({N} versions)")
