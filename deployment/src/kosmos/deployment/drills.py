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
    """Answers like a fraud model when logged (signature inference), raises whenever it is served."""

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
