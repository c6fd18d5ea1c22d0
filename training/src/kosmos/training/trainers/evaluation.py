"""Evaluation on a held-out time window: ROC-AUC, PR-AUC, recall at a fixed FPR, and pictures."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)


def time_split(frame: pd.DataFrame, holdout_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the earlier events, evaluate on the latest ``holdout_fraction`` of time."""
    ordered = frame.sort_values("event_timestamp", kind="stable")
    cut = int(len(ordered) * (1 - holdout_fraction))
    return ordered.iloc[:cut], ordered.iloc[cut:]


def recall_at_fpr(y_true: np.ndarray, scores: np.ndarray, fpr_target: float) -> float:
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.interp(fpr_target, fpr, tpr))


def evaluate(y_true: np.ndarray, scores: np.ndarray, fpr_target: float = 0.01) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "pr_auc": float(average_precision_score(y_true, scores)),
        f"recall_at_fpr_{fpr_target:g}": recall_at_fpr(y_true, scores, fpr_target),
        "holdout_rows": float(len(y_true)),
        "holdout_positive_rate": float(np.mean(y_true)),
    }


def figures(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """ROC curve, precision-recall curve and confusion matrix, as matplotlib figures."""
    out = {}
    fpr, tpr, _ = roc_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y_true, scores):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    out["evaluation/roc_curve.png"] = fig
    precision, recall, _ = precision_recall_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(recall, precision, label=f"AP {average_precision_score(y_true, scores):.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend(loc="upper right")
    out["evaluation/pr_curve.png"] = fig
    matrix = confusion_matrix(y_true, scores >= threshold, labels=[0, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["negative", "positive"],
        yticklabels=["negative", "positive"],
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion at {threshold}",
    )
    out["evaluation/confusion_matrix.png"] = fig
    return out


def close(figs: dict[str, Any]) -> None:
    for fig in figs.values():
        plt.close(fig)
