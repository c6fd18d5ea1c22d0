"""Deploy-time optimization on a real torch model saved as an MLflow pyfunc (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.models import infer_signature
from pydantic import ValidationError

from kosmos.deployment.drills import int8_fragile
from kosmos.deployment.optimize import OptimizationRefused, call_cost, optimize
from kosmos.deployment.reconciler import failure_reason
from kosmos.deployment.spec import DeploymentSpec, Optimization
from kosmos.training.trainers.mlp import TabularMLPModel, _network

COLUMNS = ["a", "b", "c", "d"]


def _data(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(COLUMNS)))
    logit = 2.0 * x[:, 0] - 1.5 * x[:, 1] + x[:, 2] * x[:, 3]
    frame = pd.DataFrame(x, columns=COLUMNS)
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def _trained_model() -> TabularMLPModel:
    torch.manual_seed(0)
    train = _data(4000, seed=1)
    zeros, ones = np.zeros(len(COLUMNS)), np.ones(len(COLUMNS))
    model = TabularMLPModel(COLUMNS, zeros, zeros, ones, _network(len(COLUMNS), 32, 2))
    x = model._tensor(train)
    y = torch.tensor(train["label"].to_numpy(dtype="float32")).unsqueeze(1)
    optimizer = torch.optim.Adam(model.network.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.network(x), y)
        loss.backward()
        optimizer.step()
    return model


def _saved(model: TabularMLPModel, path: Path, holdout: pd.DataFrame | None) -> mlflow.pyfunc.PyFuncModel:
    """What ``TrainingRun.log_pyfunc(holdout=...)`` writes, saved locally."""
    example = holdout[COLUMNS].head(5) if holdout is not None else _data(5, seed=9)[COLUMNS]
    extra = {}
    if holdout is not None:
        holdout.to_parquet(path.parent / "holdout.parquet")
        extra = {
            "artifacts": {"holdout": str(path.parent / "holdout.parquet")},
            "metadata": {"kosmos": {"holdout_label": "label", "metric": "roc_auc"}},
        }
    signature = infer_signature(example, model.predict(None, example))
    mlflow.pyfunc.save_model(str(path), python_model=model, signature=signature, **extra)
    return mlflow.pyfunc.load_model(str(path))


@pytest.fixture(scope="module")
def trained() -> TabularMLPModel:
    return _trained_model()


def test_int8_and_onnx_keep_the_metric_and_the_faster_one_is_served(trained, tmp_path) -> None:
    holdout = _data(2000, seed=2)
    loaded = _saved(trained, tmp_path / "m", holdout)
    before = np.asarray(loaded.predict(holdout[COLUMNS]))
    served, report = optimize(loaded, tmp_path / "m", Optimization(tolerance=0.01, min_speedup=1.0))

    assert set(report["methods"]) == {"int8", "onnx"}
    assert report["original"]["metric"] > 0.75, report  # a model worth optimizing
    for method, measured in report["methods"].items():
        assert measured["metric_drop"] <= 0.01, (method, measured)
        assert measured["ms_1_row"] > 0 and measured["ms_64_rows"] > 0
    # min_speedup 1.0: the faster method, unless timing noise made the original the fastest
    best = min(report["methods"], key=lambda m: call_cost(report["methods"][m]))
    faster = call_cost(report["original"]) >= call_cost(report["methods"][best])
    assert report["served"] == (best if faster else "original"), report
    after = np.asarray(served.predict(holdout[COLUMNS]))
    assert after.shape == before.shape
    assert np.abs(after - before).max() < 0.05  # the same model, approximately
    assert report["warnings"] == []


def test_a_method_that_costs_more_than_the_tolerance_refuses_the_deploy(trained, tmp_path) -> None:
    fragile = TabularMLPModel(
        COLUMNS, trained.medians, trained.means, trained.stds, int8_fragile(trained.network)
    )
    holdout = _data(2000, seed=2)
    original = trained.predict(None, holdout[COLUMNS])
    assert np.allclose(fragile.predict(None, holdout[COLUMNS]), original, atol=1e-5)  # float: unchanged
    loaded = _saved(fragile, tmp_path / "m", holdout)

    with pytest.raises(OptimizationRefused, match=r"int8 lowers holdout roc_auc from 0\.\d+ to 0\.\d+"):
        optimize(loaded, tmp_path / "m", Optimization(methods=["int8"]))

    _, report = optimize(loaded, tmp_path / "m", Optimization(methods=["int8"], on_drop="warn"))
    assert report["methods"]["int8"]["metric_drop"] > 0.1
    assert len(report["warnings"]) == 1 and "tolerance" in report["warnings"][0]


def test_the_original_is_served_when_no_method_is_fast_enough(trained, tmp_path) -> None:
    holdout = _data(500, seed=2)
    loaded = _saved(trained, tmp_path / "m", holdout)
    network = loaded.unwrap_python_model().network
    served, report = optimize(loaded, tmp_path / "m", Optimization(methods=["int8"], min_speedup=50))
    assert report["served"] == "original" and "50" in report["reason"]
    assert served.unwrap_python_model().network is network


def test_bad_optimization_requests_get_clear_errors(trained, tmp_path) -> None:
    loaded = _saved(trained, tmp_path / "m", holdout=None)
    with pytest.raises(OptimizationRefused, match=r"holdout\.parquet is missing"):
        optimize(loaded, tmp_path / "m", Optimization(label="label"))
    with pytest.raises(OptimizationRefused, match="label"):
        optimize(loaded, tmp_path / "m", Optimization())
    with pytest.raises(ValidationError, match="valid: accuracy, neg_rmse, pr_auc, roc_auc"):
        DeploymentSpec(model="m", optimization={"metric": "f1"})
    with pytest.raises(ValidationError, match="repeat"):
        Optimization(methods=["int8", "int8"])
    with pytest.raises(ValidationError, match="fp4"):
        Optimization(methods=["fp4"])


def test_the_failure_reason_is_the_last_error_line_of_a_serve_message() -> None:
    message = (
        "The deployment failed to start 3 times in a row. See controller logs.\n"
        "Traceback (most recent call last):\n  File 'x.py', line 1\n"
        "ray.exceptions.RayTaskError(OptimizationRefused): boom\n"
        "kosmos.deployment.optimize.OptimizationRefused: int8 lowers holdout roc_auc from 0.9 to 0.5\n"
    )
    assert failure_reason(message).startswith("kosmos.deployment.optimize.OptimizationRefused: int8 lowers")
    assert failure_reason("Deploying") == "Deploying"
