"""One live platform for the deployment tests: features online, three model versions, Ray Serve.

Package-scoped because training five models and starting Ray Serve replicas takes minutes
on 2 cores: both modules share the platform, and each test uses its own deployment names
(``fraud-main`` is shared; it is created by whichever test needs it first).
v1 (champion) and v2 are real fraud models; v3 fails every served request (a drill);
v4 is the MLP and v5 the same MLP made int8-fragile (an optimization-refusal drill).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pytest

from kosmos.deployment.drills import FailingModel, int8_fragile
from kosmos.features import sdk as features
from kosmos.features.demo import generate, write
from kosmos.features.demo.fraud_data import default_end
from kosmos.features.repo import feature_repo
from kosmos.platform import KosmosClient
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import Settings
from kosmos.training import sdk as training
from kosmos.training.tracking import run
from kosmos.training.trainers.boosting import DEFAULT_LABEL as LABEL
from kosmos.training.trainers.boosting import feature_columns, train_baseline
from kosmos.training.trainers.evaluation import time_split
from kosmos.training.trainers.mlp import train_mlp

HERE = Path(__file__)
MODEL = "fraud"
SOURCES: dict[int, str] = {}  # version -> its model URI


def _train(c: KosmosClient, settings: Settings, frame: Any, params: dict[str, Any], name: str) -> int:
    with run("demo", "deploy-tests", dataset="deploy-set", settings=settings, client=c, code_path=HERE) as r:
        if params.get("failing"):
            columns = feature_columns(frame)
            r.log_pyfunc(FailingModel(), input_example=frame[columns].head(5))
        elif params.get("mlp"):
            train_mlp(r, frame, {"max_epochs": 6, "hidden": 32})
        elif params.get("int8_fragile"):  # the MLP of the previous run, made int8-fragile
            model = mlflow.pyfunc.load_model(params["int8_fragile"]).unwrap_python_model()
            model.network = int8_fragile(model.network)
            columns = feature_columns(frame)
            _, holdout = time_split(frame)
            r.log_pyfunc(model, input_example=holdout[columns].head(5), holdout=holdout, label=LABEL)
        else:
            train_baseline(r, frame, params)
    registered = training.register_model("demo", MODEL, r.run_id, client=c)
    SOURCES[registered["version"]] = registered["source"]
    return registered["version"]


@pytest.fixture(scope="package")
def deploy_env(
    ray_cluster: str, tmp_path_factory, free_port, live_platform, platform_home, reconciler_loop
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("deploy-home")
    settings = platform_home(home)
    # two ingress replicas, as a production data plane runs: losing one must not stop serving
    settings = settings.model_copy(
        update={"dataplane": settings.dataplane.model_copy(update={"replicas": 2})}
    )
    database = Database(settings.database_url)
    admin = bootstrap(settings, database).token
    with pytest.MonkeyPatch.context() as patch, live_platform(settings, database, free_port()) as url:
        patch.chdir(
            home
        )  # MLflow puts a SQLite store's artifacts under ./mlruns: keep them out of the checkout
        settings = settings.model_copy(update={"client": settings.client.model_copy(update={"url": url})})
        data = generate(rows=8_000, seed=3, end=default_end())
        with KosmosClient(url=url, token=admin) as c:
            c.post("/projects/demo/features/init", {"template": "fraud"})
            write(data, feature_repo(settings, "demo").tables_dir)
            c.post("/projects/demo/features/pipelines/run", {"materialize": True})
            entities = data.transactions[
                ["transaction_id", "user_id", "merchant_id", "amount", "event_timestamp", "label"]
            ]
            frame = features.get_training_set(
                "demo", entities, feature_service="fraud_detection_v1", client=c
            )
            training.register_dataset(
                "demo", "deploy-set", frame, feature_service="fraud_detection_v1", client=c
            )
            versions = [
                _train(c, settings, frame, {"max_iter": 40}, "v1"),
                _train(c, settings, frame, {"max_iter": 20, "learning_rate": 0.2}, "v2"),
                _train(c, settings, frame, {"failing": True}, "v3"),
            ]
            versions.append(_train(c, settings, frame, {"mlp": True}, "v4"))
            versions.append(_train(c, settings, frame, {"int8_fragile": SOURCES[4]}, "v5"))
            assert versions == [1, 2, 3, 4, 5]
            training.promote("demo", MODEL, 1, alias="champion", reason="deployment tests", client=c)
            c.post("/users", {"name": "viewer"})
            c.put("/projects/demo/members/viewer", {"role": "viewer"})
            viewer = c.post("/tokens", {"name": "viewer", "user": "viewer"})["token"]
        with reconciler_loop(settings, database) as reconciler:
            yield {
                "fraud_main": _fraud_main,
                "url": url,
                "admin": admin,
                "viewer": viewer,
                "settings": settings,
                "database": database,
                "rows": data.transactions.tail(50),
                "reconciler": reconciler,
            }
    import time

    from ray import serve

    from kosmos.deployment.dataplane import APP

    doomed = [app for app in serve.status().applications if app.startswith("kosmos--")]
    doomed.append(APP)  # the reconciler's data plane: its settings name this platform's database
    for app in doomed:
        serve.delete(app, _blocking=False)  # all at once, then wait for them together
    deadline = time.monotonic() + 120
    while (left := [a for a in doomed if a in serve.status().applications]) and time.monotonic() < deadline:
        time.sleep(1)
    if left:  # cleanup only: they go with the session's cluster; the next tests use their own names
        print(f"deployment tests: {left} still deleting after 120 s")
    database.dispose()


def _fraud_main(c: KosmosClient) -> dict[str, Any]:
    """``fraud-main``, the champion with online features, created unless it is there; its healthy state."""
    from kosmos.deployment import sdk

    if "fraud-main" not in {d["name"] for d in sdk.list_deployments("demo", client=c)}:
        sdk.create(
            "demo", "fraud-main", MODEL, feature_service="fraud_detection_v1", num_cpus=0.25,
            log_sample_rate=1.0, client=c,
        )  # fmt: skip
    state = sdk.wait("demo", "fraud-main", timeout_s=240, client=c)
    assert state["status"] == "healthy", state
    return state


KEEP = {"fraud-main"}  # shared by the data plane tests and the first deployment tests


@pytest.fixture(autouse=True)
def _delete_deployments_after_each_test(deploy_env: dict[str, Any]) -> Iterator[None]:
    """Each test's deployments go away after it, so their CPUs are free for the next test."""
    yield
    import time

    from ray import serve

    from kosmos.deployment import sdk

    with KosmosClient(url=deploy_env["url"], token=deploy_env["admin"]) as c:
        doomed = [d["name"] for d in sdk.list_deployments("demo", client=c) if d["name"] not in KEEP]
        for name in doomed:
            sdk.delete("demo", name, client=c)
    # until Ray Serve is deleting them all: their replicas' graceful stops (up to 20 s each) go on
    # while the next test starts, and the CPUs they hold come free as they end
    prefixes = tuple(f"kosmos--demo--{name}" for name in doomed)
    deadline = time.monotonic() + 90

    def live() -> list[str]:
        apps = serve.status().applications
        return [a for a, s in apps.items() if a.startswith(prefixes) and s.status != "DELETING"]

    while prefixes and live():
        assert time.monotonic() < deadline, f"deleted deployments are still running in Ray Serve: {live()}"
        time.sleep(0.5)
