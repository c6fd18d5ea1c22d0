"""A tabular baseline: gradient boosting with early stopping, evaluated on later data.

Any binary-labelled frame with an ``event_timestamp``: the label and feature columns are parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from kosmos.training.tracking import TrainingRun
from kosmos.training.trainers.evaluation import close, evaluate, figures, time_split

DEFAULT_LABEL = "label"
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 200,
    "max_leaf_nodes": 31,
    "l2_regularization": 0.0,
    "holdout_fraction": 0.2,
}


def feature_columns(frame: pd.DataFrame, label: str = DEFAULT_LABEL) -> list[str]:
    """The numeric columns but the label and identifiers (``id``, ``*_id``: keys, not features)."""
    return [
        c
        for c in frame.columns
        if c != label
        and c != "id"
        and not c.endswith("_id")
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]


def train_baseline(
    run: TrainingRun,
    frame: pd.DataFrame,
    params: dict[str, Any] | None = None,
    *,
    label: str = DEFAULT_LABEL,
    columns: list[str] | None = None,
) -> dict[str, float]:
    """Fit, evaluate on the latest 20% of time, log metrics, pictures and the model to ``run``.

    ``columns``: the features (default: :func:`feature_columns`)."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    if label not in frame.columns:
        raise ValueError(f"the training frame has no {label!r} column")
    columns = columns or feature_columns(frame, label)
    train, holdout = time_split(frame, p["holdout_fraction"])
    run.log_params({**p, "features": ",".join(columns), "train_rows": len(train)})
    model = HistGradientBoostingClassifier(
        learning_rate=p["learning_rate"],
        max_iter=p["max_iter"],
        max_leaf_nodes=p["max_leaf_nodes"],
        l2_regularization=p["l2_regularization"],
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=10,
        random_state=0,
    )
    model.fit(train[columns].astype("float64"), train[label])
    for step, loss in enumerate(-model.validation_score_):
        run.log_metrics({"validation_loss": float(loss)}, step=step)
    scores = model.predict_proba(holdout[columns].astype("float64"))[:, 1]
    y_true = holdout[label].to_numpy()
    metrics = evaluate(y_true, scores) | {"iterations": float(model.n_iter_)}
    run.log_metrics(metrics)
    figs = figures(y_true, scores, threshold=float(np.quantile(scores, 0.98)))
    for path, fig in figs.items():
        run.log_figure(fig, path)
    close(figs)
    # MLflow saves sklearn models with skops, which loads only the types it is told to trust
    run.log_model(
        model, input_example=holdout[columns].astype("float64").head(5), skops_trusted_types=TRUSTED_TYPES
    )
    return metrics
