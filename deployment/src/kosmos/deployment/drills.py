"""Models for rollout drills: prove that a bad version is caught and rolled back.

Register one as a model version and roll it out with a canary; the SLO check
must roll it back. Used by the test suite and available for game days.
"""

from __future__ import annotations

import time
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class FailingModel(mlflow.pyfunc.PythonModel):
    """Answers one score per row when logged (signature inference), raises whenever it is served."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        if context is None:  # mlflow.pyfunc.log_model infers the signature without a context
            return np.zeros(len(model_input))
        raise RuntimeError("drill: this model version fails every request")


class SlowModel(mlflow.pyfunc.PythonModel):
    """Answers zeros after ``delay_s`` per call: a latency regression for the p99 SLO."""

    def __init__(self, delay_s: float = 0.5) -> None:
        self.delay_s = delay_s

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        if context is not None:
            time.sleep(self.delay_s)
        return np.zeros(len(model_input))


def int8_fragile(network: Any, spike: float = 1e4) -> Any:
    """The same predictions, but a network int8 quantization ruins: an optimization-refusal drill.

    Adds one hidden unit to the first Linear layer with a weight of ``spike`` and a zero
    weight into the next Linear layer, so the float network's output is unchanged. Per-tensor
    int8 quantization then spends its 255 levels on the spike and rounds every real weight
    of that layer to zero.
    """
    import torch

    layers = list(network)
    linear = [i for i, m in enumerate(layers) if isinstance(m, torch.nn.Linear)]
    if len(linear) < 2:
        raise ValueError("int8_fragile needs a network with at least two Linear layers")
    first, second = layers[linear[0]], layers[linear[1]]
    wide = torch.nn.Linear(first.in_features, first.out_features + 1)
    narrow = torch.nn.Linear(second.in_features + 1, second.out_features)
    with torch.no_grad():
        wide.weight[:-1], wide.bias[:-1] = first.weight, first.bias
        wide.weight[-1], wide.bias[-1] = spike, 0.0
        narrow.weight[:, :-1], narrow.bias[:] = second.weight, second.bias
        narrow.weight[:, -1] = 0.0
    layers[linear[0]], layers[linear[1]] = wide, narrow
    return torch.nn.Sequential(*layers)
