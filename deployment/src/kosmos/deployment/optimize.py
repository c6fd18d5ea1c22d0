"""Model optimization at deploy time: int8 dynamic quantization and ONNX Runtime, checked on a holdout.

A registered pyfunc model whose Python model holds ``torch.nn.Module`` attributes (the
demo MLP does) can be served optimized. For each requested method the replica

1. builds the optimized variant (``torch.ao.quantization.quantize_dynamic`` on the
   Linear layers, or an ONNX export run by onnxruntime),
2. scores the model's logged holdout (``artifacts/holdout.parquet``, written by
   ``TrainingRun.log_pyfunc(holdout=...)``) before and after, with the model's metric,
3. times a 1-row and a 64-row call before and after.

A method that costs more metric than ``tolerance`` refuses the deploy (``on_drop:
refuse``, the default: the replica fails to start, so the rollout rolls back and the
previous version keeps serving) or is kept with a warning (``on_drop: warn``). Of the
methods that pass, the fastest is served, and only when it beats the original by
``min_speedup``; otherwise the original is served and the report says why.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kosmos.deployment.spec import Optimization

HOLDOUT_FILE = "artifacts/holdout.parquet"


class OptimizationRefused(RuntimeError):
    """An optimization cost more of the evaluation metric than the deployment tolerates."""


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s))


def _accuracy(y: np.ndarray, s: np.ndarray) -> float:
    predicted = (s >= 0.5).astype(int) if s.dtype.kind == "f" else s
    return float(np.mean(predicted == y))


def _neg_rmse(y: np.ndarray, s: np.ndarray) -> float:
    return -float(np.sqrt(np.mean((y.astype("float64") - s.astype("float64")) ** 2)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": _roc_auc,
    "pr_auc": _average_precision,
    "accuracy": _accuracy,
    "neg_rmse": _neg_rmse,
}
"""Holdout metrics by name; higher is better for every one (hence ``neg_rmse``)."""


def metric_function(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown holdout metric {name!r}; valid: {', '.join(sorted(METRICS))}") from None


class OnnxModule:
    """Stands in for a ``torch.nn.Module``: runs the exported graph in onnxruntime."""

    def __init__(self, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # replicas share small machines; one thread each
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: Any) -> Any:
        import torch

        out = self.session.run(None, {self.input: x.detach().numpy()})[0]
        return torch.from_numpy(out)

    def eval(self) -> OnnxModule:
        return self


def _modules(python_model: Any) -> dict[str, Any]:
    import torch

    return {k: v for k, v in vars(python_model).items() if isinstance(v, torch.nn.Module)}


def _quantize(module: Any, example: Any) -> Any:
    import torch

    return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


def _onnx(module: Any, example: Any) -> Any:
    import torch

    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "rows"}, "y": {0: "rows"}},
            dynamo=False,
        )
        return OnnxModule(path.read_bytes())


BUILDERS: dict[str, Callable[[Any, Any], Any]] = {"int8": _quantize, "onnx": _onnx}


def _examples(python_model: Any, names: list[str], frame: pd.DataFrame) -> dict[str, Any]:
    """The first input each module sees when the model predicts ``frame`` (for export)."""
    seen: dict[str, Any] = {}
    hooks = [
        getattr(python_model, n).register_forward_pre_hook(
            lambda _m, args, n=n: seen.setdefault(n, args[0].detach().clone())
        )
        for n in names
    ]
    try:
        python_model.predict(None, frame)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _timed(predict: Callable[[pd.DataFrame], Any], frame: pd.DataFrame, repeats: int) -> float:
    """Median milliseconds of ``predict(frame)``."""
    predict(frame)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(frame)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _measure(python_model: Any, x: pd.DataFrame, y: np.ndarray, score: Callable, repeats: int) -> dict:
    def predict(frame: pd.DataFrame) -> Any:
        return python_model.predict(None, frame)

    return {
        "metric": round(score(y, np.asarray(predict(x)).ravel()), 6),
        "ms_1_row": round(_timed(predict, x.head(1), repeats), 4),
        "ms_64_rows": round(_timed(predict, x.head(64), repeats), 4),
    }


def call_cost(measured: dict[str, Any]) -> float:
    """What "faster" means here: milliseconds of a 1-row call plus a 64-row call."""
    return measured["ms_1_row"] + measured["ms_64_rows"]


def load_holdout(model_dir: Path, label: str) -> pd.DataFrame:
    path = model_dir / HOLDOUT_FILE
    if not path.exists():
        raise OptimizationRefused(
            "optimization needs a holdout logged with the model (TrainingRun.log_pyfunc(holdout=...)); "
            f"{HOLDOUT_FILE} is missing"
        )
    frame = pd.read_parquet(path)
    if label not in frame.columns:
        raise OptimizationRefused(f"the logged holdout has no label column {label!r}")
    return frame


def optimize(pyfunc_model: Any, model_dir: Path, options: Optimization) -> tuple[Any, dict[str, Any]]:
    """Return the model to serve (optimized or the original) and a report of what was measured.

    Raises ``OptimizationRefused`` when a method costs more than the tolerance and the
    policy is ``refuse``, or when the model cannot be optimized at all.
    """
    python_model = pyfunc_model.unwrap_python_model()
    names = list(_modules(python_model))
    if not names:
        raise OptimizationRefused(
            f"{type(python_model).__name__} holds no torch.nn.Module; int8 and ONNX apply to torch models"
        )
    meta = (pyfunc_model.metadata.metadata or {}).get("kosmos", {})
    label = options.label or meta.get("holdout_label")
    if not label:
        raise OptimizationRefused("say which holdout column is the label (optimization.label)")
    metric = options.metric or meta.get("metric") or "roc_auc"
    score = metric_function(metric)
    holdout = load_holdout(model_dir, label)
    columns = [c.name for c in pyfunc_model.metadata.get_input_schema().inputs]
    x, y = holdout[columns], holdout[label].to_numpy()
    examples = _examples(python_model, names, x.head(8))
    baseline = _measure(python_model, x, y, score, options.timing_repeats)
    report: dict[str, Any] = {"metric": metric, "holdout_rows": len(x), "original": baseline, "methods": {}}
    warnings: list[str] = []
    passed: dict[str, tuple[Any, dict[str, Any]]] = {}
    for method in options.methods:
        candidate = copy.copy(python_model)
        for name in names:
            setattr(
                candidate, name, BUILDERS[method](copy.deepcopy(getattr(python_model, name)), examples[name])
            )
        measured = _measure(candidate, x, y, score, options.timing_repeats)
        drop = baseline["metric"] - measured["metric"]
        measured["metric_drop"] = round(drop, 6)
        report["methods"][method] = measured
        if drop > options.tolerance:
            message = (
                f"{method} lowers holdout {metric} from {baseline['metric']:.4f} to {measured['metric']:.4f} "
                f"(drop {drop:.4f} > tolerance {options.tolerance})"
            )
            if options.on_drop == "refuse":
                raise OptimizationRefused(message)
            warnings.append(message)
        passed[method] = (candidate, measured)

    best = min(passed, key=lambda m: call_cost(passed[m][1]), default=None)
    if best is not None and call_cost(baseline) / call_cost(passed[best][1]) >= options.min_speedup:
        report["served"] = best
        report["speedup"] = round(call_cost(baseline) / call_cost(passed[best][1]), 3)
        pyfunc_model._model_impl.python_model = passed[best][0]
    else:
        report["served"] = "original"
        report["reason"] = f"no method was at least {options.min_speedup}x faster than the original"
    report["warnings"] = warnings
    return pyfunc_model, report
