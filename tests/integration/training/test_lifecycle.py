"""features -> dataset -> run -> registered model -> lineage, and the ways it must refuse."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from kosmos.features import sdk as features
from kosmos.platform import Forbidden, InvalidInput, KosmosClient, NotFound
from kosmos.training import run, sdk
from kosmos.training.tracking import UnregistrableRun, nullable_numbers
from kosmos.training.trainers.boosting import train_baseline

HERE = Path(__file__).resolve()


def _training_set(c: KosmosClient, data) -> pd.DataFrame:
    entities = data.transactions[
        ["transaction_id", "user_id", "merchant_id", "amount", "event_timestamp", "label"]
    ]
    return features.get_training_set("demo", entities, feature_service="fraud_detection_v1", client=c)


def test_from_features_to_a_champion_with_full_lineage(training_server, training_data) -> None:
    settings = training_server["settings"]
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        frame = _training_set(c, training_data)
        v1 = sdk.register_dataset(
            "demo", "fraud-train", frame, feature_service="fraud_detection_v1", client=c
        )
        again = sdk.register_dataset(
            "demo", "fraud-train", frame, feature_service="fraud_detection_v1", client=c
        )
        assert (v1["version"], again["version"]) == (1, 1)  # same content, same version
        assert v1["rows"] == len(frame) and v1["time_range"]

        with run(
            "demo", "fraud", dataset=("fraud-train", 1), settings=settings, client=c, code_path=HERE
        ) as r:
            metrics = train_baseline(r, r.data)
        assert metrics["roc_auc"] > 0.75, metrics

        model = sdk.register_model("demo", "fraud-detector", r.run_id, client=c)
        assert model["version"] == 1
    with KosmosClient(url=training_server["url"], token=training_server["admin"]) as c:
        promoted = sdk.promote(
            "demo", "fraud-detector", 1, alias="champion", reason="best AUC so far", client=c
        )
        assert promoted["previous_version"] is None and promoted["by"] == "admin"
        shown = sdk.show_model("demo", "fraud-detector", client=c)
        assert shown["aliases"] == {"champion": 1}
        assert shown["versions"][0]["metrics"]["roc_auc"] == pytest.approx(metrics["roc_auc"])
        trail = sdk.lineage("demo", "fraud-detector", "champion", client=c)
        events = c.get("/audit", project="demo", action="model.promote")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=HERE.parent, capture_output=True, text=True
    ).stdout
    assert trail["code"]["commit"] == head.strip()
    assert trail["dataset"]["name"] == "fraud-train" and trail["dataset"]["version"] == 1
    assert trail["dataset"]["feature_service"] == "fraud_detection_v1"
    views = {v["name"] for v in trail["features"]["feature_views"]}
    assert {"user_transaction_stats", "merchant_stats", "transaction_features"} <= views
    assert events[0]["details"]["reason"] == "best AUC so far"

    tracked = MlflowClient(settings.mlflow_tracking_uri).get_run(r.run_id)
    assert tracked.data.tags["kosmos.user"] == "dev" and tracked.data.tags["kosmos.team"] == "risk"
    assert [d.dataset.name for d in tracked.inputs.dataset_inputs] == ["fraud-train@v1"]
    artifacts = {
        a.path for a in MlflowClient(settings.mlflow_tracking_uri).list_artifacts(r.run_id, "evaluation")
    }
    assert {
        "evaluation/roc_curve.png",
        "evaluation/pr_curve.png",
        "evaluation/confusion_matrix.png",
    } <= artifacts
    losses = MlflowClient(settings.mlflow_tracking_uri).get_metric_history(r.run_id, "validation_loss")
    assert len(losses) > 3  # per-step metrics arrived (logged asynchronously)


def test_dataset_versions_load_back_and_diff(training_server, training_data) -> None:
    frame = training_data.transactions.head(2_000)
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        sdk.register_dataset("demo", "raw", frame, client=c)
        sdk.register_dataset(
            "demo", "raw", frame.head(1_500).drop(columns="device").assign(risk=1.0), client=c
        )
        assert [v["version"] for v in sdk.dataset_versions("demo", "raw", client=c)] == [1, 2]
        first = sdk.load_dataset("demo", "raw", 1, client=c)
        pd.testing.assert_frame_equal(first, frame.reset_index(drop=True), check_dtype=False)
        diff = sdk.diff_datasets("demo", "raw", 1, 2, client=c)
        assert diff["added_columns"] == ["risk"] and diff["removed_columns"] == ["device"]
        assert diff["rows"] == [2000, 1500]
        with pytest.raises(NotFound, match="no version 9"):
            sdk.load_dataset("demo", "raw", 9, client=c)
        with pytest.raises(InvalidInput, match="no rows"):
            sdk.register_dataset("demo", "empty", frame.head(0), client=c)
    repo = training_server["settings"].projects_dir / "demo" / "datasets"
    status = subprocess.run(
        [str(Path(__import__("sys").executable).parent / "dvc"), "status"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and "up to date" in status.stdout


def test_a_crashing_run_ends_failed_keeps_metrics_and_cannot_be_registered(training_server) -> None:
    settings = training_server["settings"]
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        sdk.register_dataset("demo", "tiny", pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}), client=c)
        with (
            pytest.raises(ZeroDivisionError),
            run("demo", "crash", dataset="tiny", settings=settings, client=c, code_path=HERE) as r,
        ):
            r.log_metrics({"loss": 0.5}, step=0)
            r.log_metrics({"loss": 0.4}, step=1)
            _ = 1 / 0
        shown = sdk.list_runs("demo", "crash", client=c)[0]
        assert shown["status"] == "FAILED" and shown["metrics"]["loss"] == pytest.approx(0.4)
        with pytest.raises(InvalidInput, match="FAILED"):
            sdk.register_model("demo", "crashy", r.run_id, client=c)


def test_registration_needs_code_data_and_a_model(training_server, tmp_path) -> None:
    settings = training_server["settings"]
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        with run("demo", "no-data", settings=settings, client=c, code_path=HERE) as r:
            r.log_metrics({"m": 1.0})
        with pytest.raises(InvalidInput, match="no dataset version"):
            sdk.register_model("demo", "m", r.run_id, client=c)
        sdk.register_dataset("demo", "d", pd.DataFrame({"x": [1.0], "label": [0]}), client=c)
        with (
            pytest.warns(UnregistrableRun, match="cannot be registered"),  # said when it starts
            run("demo", "no-code", dataset="d", settings=settings, client=c, code_path=tmp_path) as r,
        ):
            # what MLflow tags on its own when the process's entry point lies in some git checkout
            MlflowClient(settings.mlflow_tracking_uri).set_tag(r.run_id, "mlflow.source.git.commit", "0" * 40)
        with pytest.raises(InvalidInput, match="no code version"):
            sdk.register_model("demo", "m", r.run_id, client=c)
        with run("demo", "no-model", dataset="d", settings=settings, client=c, code_path=HERE) as r:
            pass
        with pytest.raises(NotFound, match="no model"):
            sdk.register_model("demo", "m", r.run_id, client=c)
        with (
            pytest.raises(InvalidInput, match=r"kosmos\.project") as reserved,
            run("demo", "x", dataset="d", settings=settings, client=c, tags={"kosmos.project": "other"}),
        ):
            pass
        assert reserved.value.details[0]["field"] == "tags"
        with (
            pytest.raises(NotFound, match="dataset 'ghost' not found"),
            run("demo", "x", dataset="ghost", settings=settings, client=c),
        ):
            pass


def test_roles_and_projects_are_enforced(training_server) -> None:
    settings = training_server["settings"]
    with KosmosClient(url=training_server["url"], token=training_server["vic"]) as c:
        with pytest.raises(Forbidden):
            sdk.register_dataset("demo", "x", pd.DataFrame({"a": [1]}), client=c)
        with pytest.raises(Forbidden), run("demo", "x", settings=settings, client=c):
            pass
        with pytest.raises(Forbidden):
            sdk.promote("demo", "fraud-detector", 1, reason="viewer tries", client=c)
        assert sdk.list_runs("demo", "x", client=c) == []  # the refused run left nothing behind
    with KosmosClient(url=training_server["url"], token=training_server["otto"]) as c:
        for call in (
            lambda: sdk.list_datasets("demo", client=c),
            lambda: sdk.list_models("demo", client=c),
            lambda: sdk.list_runs("demo", client=c),
        ):
            with pytest.raises(NotFound):
                call()
    with (
        KosmosClient(url=training_server["url"], token=training_server["admin"]) as c,
        pytest.raises(NotFound, match="not found"),
    ):
        sdk.promote("demo", "nope", 1, reason="missing model", client=c)


def test_an_mlflow_that_is_down_is_a_clear_503(platform_env, free_port) -> None:
    import time

    from fastapi.testclient import TestClient

    from kosmos.platform.api.app import create_app

    settings = platform_env.settings.model_copy(
        update={
            "mlflow": platform_env.settings.mlflow.model_copy(
                update={"tracking_uri": f"http://127.0.0.1:{free_port()}"}
            )
        }
    )
    with TestClient(create_app(settings, platform_env.database)) as client:
        started = time.monotonic()
        response = client.get(
            "/api/v1/projects/demo/runs", headers=platform_env.auth(platform_env.admin_token)
        )
    assert response.status_code == 503
    assert "MLflow" in response.json()["error"]["message"]
    assert time.monotonic() - started < 60


def test_a_sweep_picks_the_best_child_by_metric(training_server, training_data) -> None:
    from kosmos.training.sweeps import sweep

    settings = training_server["settings"]
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        frame = _training_set(c, training_data)
        sdk.register_dataset("demo", "sweep-set", frame, feature_service="fraud_detection_v1", client=c)
        # entries of other shapes, as a sweep over model types has: the best's own keys come back
        grid = [{"learning_rate": 0.3, "max_iter": 5}, {"max_leaf_nodes": 15, "l2_regularization": 1.0}]
        result = sweep(
            "demo",
            "sweeps",
            grid,
            train_baseline,
            metric="pr_auc",
            dataset="sweep-set",
            settings=settings,
            client=c,
            code_path=HERE,
        )
        children = sdk.list_runs(
            "demo", "sweeps", filter=f"tags.mlflow.parentRunId = '{result.parent_run_id}'", client=c
        )
        table = sdk.compare_runs("demo", [r["run_id"] for r in children], client=c)
    assert len(children) == 2 and len(result.table) == 2
    best = max(children, key=lambda r: r["metrics"]["pr_auc"])
    assert result.best_run_id == best["run_id"]
    assert result.best_value == pytest.approx(best["metrics"]["pr_auc"])
    assert result.best_params == grid[int(best["run_name"].removeprefix("trial-"))]
    assert set(table.columns) == {r["run_id"] for r in children}
    assert "metric.pr_auc" in table.index and "param.learning_rate" in table.index


def test_the_mlp_trains_registers_and_predicts(training_server, training_data) -> None:
    import mlflow.artifacts
    import mlflow.pyfunc

    from kosmos.training.trainers.mlp import train_mlp

    settings = training_server["settings"]
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        frame = _training_set(c, training_data)
        sdk.register_dataset("demo", "mlp-set", frame, feature_service="fraud_detection_v1", client=c)
        with run("demo", "mlp", dataset="mlp-set", settings=settings, client=c, code_path=HERE) as r:
            metrics = train_mlp(r, r.data, {"max_epochs": 8, "hidden": 32})
        assert metrics["roc_auc"] > 0.7, metrics
        version = sdk.register_model("demo", "fraud-mlp", r.run_id, client=c)
    losses = MlflowClient(settings.mlflow_tracking_uri).get_metric_history(r.run_id, "validation_loss")
    assert 1 <= len(losses) <= 8
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    loaded = mlflow.pyfunc.load_model(version["source"])
    # the training set's integer features are pandas' Int64, which MLflow's schema check does not
    # take for a double input: nullable_numbers makes them float64 (NaN where missing)
    inputs = nullable_numbers(frame[loaded.metadata.get_input_schema().input_names()].head(20))
    scores = loaded.predict(inputs)
    assert len(scores) == 20 and all(0.0 <= s <= 1.0 for s in scores)

    # the holdout travels with the model, so a deployment can check an optimized variant on it
    from kosmos.deployment.optimize import optimize
    from kosmos.deployment.spec import Optimization

    model_dir = Path(mlflow.artifacts.download_artifacts(version["source"]))
    _, report = optimize(loaded, model_dir, Optimization(methods=["onnx"], timing_repeats=5))
    assert report["metric"] == "roc_auc" and report["holdout_rows"] == min(5000, int(metrics["holdout_rows"]))
    if metrics["holdout_rows"] <= 5000:  # the very holdout training evaluated on
        assert report["original"]["metric"] == pytest.approx(metrics["roc_auc"], abs=1e-6)
    assert report["methods"]["onnx"]["metric_drop"] < 0.005


@pytest.mark.parametrize("mlflow_uri", ["sqlite"], indirect=True)  # the store is covered above
def test_the_mlp_trains_data_parallel_on_ray_with_two_workers(
    training_server, training_data, ray_cluster
) -> None:
    from kosmos.training.trainers.mlp import train_mlp

    settings = training_server["settings"]
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        frame = _training_set(c, training_data)
        sdk.register_dataset("demo", "ray-set", frame, feature_service="fraud_detection_v1", client=c)
        with run("demo", "mlp-ray", dataset="ray-set", settings=settings, client=c, code_path=HERE) as r:
            metrics = train_mlp(r, r.data, {"max_epochs": 4, "hidden": 16}, workers=2)
        version = sdk.register_model("demo", "fraud-mlp-ray", r.run_id, client=c)
    assert metrics["roc_auc"] > 0.65, metrics
    tracked = MlflowClient(settings.mlflow_tracking_uri).get_run(r.run_id)
    assert tracked.data.params["workers"] == "2"
    nodes = tracked.data.tags["kosmos.ray.nodes"].split(",")
    assert len(nodes) == 2 and all(len(n) == 56 for n in nodes)  # a Ray node id per rank
    losses = MlflowClient(settings.mlflow_tracking_uri).get_metric_history(r.run_id, "validation_loss")
    assert len(losses) == metrics["epochs"]
    assert version["version"] == 1


def test_a_tree_model_logs_registers_and_loads_back(training_server) -> None:
    """scikit-learn's tree types are trusted for MLflow's skops format; a type from elsewhere is
    named in a 422 before anything is logged."""
    import mlflow
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    settings = training_server["settings"]
    frame = load_breast_cancer(as_frame=True).frame
    inputs, y = frame.drop(columns="target"), frame["target"]
    with KosmosClient(url=training_server["url"], token=training_server["dev"]) as c:
        sdk.register_dataset("demo", "cancer", frame, client=c)
        with run("demo", "forest", dataset="cancer", settings=settings, client=c, code_path=HERE) as r:
            forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(inputs, y)
            uri = r.log_model(forest, input_example=inputs.head(5))
        version = sdk.register_model("demo", "forest", r.run_id, client=c)["version"]
        loaded = mlflow.pyfunc.load_model(uri)
        assert (loaded.predict(inputs.head(20)) == forest.predict_proba(inputs.head(20))).all()
        with run("demo", "custom", dataset="cancer", settings=settings, client=c, code_path=HERE) as r:
            odd = Pipeline([("double", FunctionTransformer(_double)), ("forest", forest)]).fit(inputs, y)
            with pytest.raises(InvalidInput, match="skops_trusted_types") as refused:
                r.log_model(odd, input_example=inputs.head(5))
        assert __name__.split(".")[-1] in str(refused.value) and version >= 1


def _double(x):
    return x * 2
