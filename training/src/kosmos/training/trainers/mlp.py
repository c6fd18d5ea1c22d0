"""A tabular neural model: a PyTorch MLP with early stopping on a later validation window.

Any binary-labelled frame with an ``event_timestamp`` (label and feature columns are parameters);
:mod:`kosmos.training.distributed` runs the same ``fit`` data-parallel on Ray.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from kosmos.training.tracking import TAG_RAY_NODES, TrainingRun
from kosmos.training.trainers.boosting import DEFAULT_LABEL, feature_columns
from kosmos.training.trainers.evaluation import close, evaluate, figures, time_split

DEFAULT_PARAMS: dict[str, Any] = {
    "hidden": 64,
    "layers": 2,
    "learning_rate": 1e-3,
    "batch_size": 512,
    "max_epochs": 30,
    "patience": 4,
    "holdout_fraction": 0.2,
    "seed": 0,
}


class TabularMLPModel(mlflow.pyfunc.PythonModel):
    """Median-impute, standardize, MLP, sigmoid: the positive class's probability per row."""

    def __init__(
        self,
        columns: list[str],
        medians: np.ndarray,
        means: np.ndarray,
        stds: np.ndarray,
        network: torch.nn.Module,
    ) -> None:
        self.columns, self.medians, self.means, self.stds = columns, medians, means, stds
        self.network = network

    def _tensor(self, frame: pd.DataFrame) -> torch.Tensor:
        values = frame[self.columns].to_numpy(dtype="float64")
        values = np.where(np.isnan(values), self.medians, values)
        return torch.tensor((values - self.means) / self.stds, dtype=torch.float32)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        self.network.eval()
        with torch.no_grad():
            return torch.sigmoid(self.network(self._tensor(frame))).squeeze(1).numpy()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.predict_proba(model_input)


def _network(inputs: int, hidden: int, layers: int) -> torch.nn.Module:
    blocks: list[torch.nn.Module] = []
    width = inputs
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
        width = hidden
    return torch.nn.Sequential(*blocks, torch.nn.Linear(width, 1))


@dataclass
class FitData:
    """Tensors and settings one training process needs (picklable: it travels to Ray workers)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    inputs: int
    params: dict[str, Any]


def fit(
    data: FitData,
    *,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m,
    shard: tuple[int, int] = (0, 1),
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> tuple[dict[str, torch.Tensor], float, int]:
    """Train with early stopping; returns (best weights, best validation loss, epochs run).

    ``shard`` = (rank, world size): this process trains on every world-size-th row
    (data-parallel); ``wrap`` turns the network into its distributed form (DDP).
    Every process computes the same validation loss on the whole validation window,
    so early stopping agrees across workers without extra communication.
    """
    p = data.params
    torch.manual_seed(p["seed"])
    network = _network(data.inputs, p["hidden"], p["layers"])
    model = wrap(network)
    rank, world = shard
    # equal shards: DDP needs every worker to take the same number of steps
    rows = len(data.x_train) // world
    x_train, y_train = data.x_train[rank::world][:rows], data.y_train[rank::world][:rows]
    positives = float(data.y_train.sum())
    pos_weight = torch.tensor([(len(data.y_train) - positives) / max(positives, 1.0)])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=p["learning_rate"])
    generator = torch.Generator().manual_seed(p["seed"] + rank)
    best_loss, best_state, waited, epoch = float("inf"), network.state_dict(), 0, 0
    for epoch in range(p["max_epochs"]):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), p["batch_size"]):
            idx = order[start : start + p["batch_size"]]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += float(loss) * len(idx)
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(network(data.x_val), data.y_val))
        if on_epoch is not None:
            on_epoch(epoch, total / len(x_train), val_loss)
        if val_loss < best_loss - 1e-4:
            best_loss, best_state, waited = val_loss, copy.deepcopy(network.state_dict()), 0
        else:
            waited += 1
            if waited >= p["patience"]:
                break
    return best_state, best_loss, epoch + 1


def train_mlp(
    run: TrainingRun,
    frame: pd.DataFrame,
    params: dict[str, Any] | None = None,
    *,
    workers: int | None = None,
    label: str = DEFAULT_LABEL,
    columns: list[str] | None = None,
) -> dict[str, float]:
    """Fit on the earlier 80% of time (its last 15% for early stopping), evaluate on the rest.

    ``workers=N`` trains data-parallel on the Ray cluster (Ray Train's TorchTrainer,
    N workers, gloo on CPU); the run, evaluation and logged model are the same.
    ``columns``: the features (default: :func:`kosmos.training.trainers.boosting.feature_columns`).
    """
    p = {**DEFAULT_PARAMS, **(params or {})}
    if label not in frame.columns:
        raise ValueError(f"the training frame has no {label!r} column")
    columns = columns or feature_columns(frame, label)
    train_all, holdout = time_split(frame, p["holdout_fraction"])
    train, validation = time_split(train_all, 0.15)
    run.log_params({**p, "features": ",".join(columns), "train_rows": len(train), "workers": workers or 1})
    raw = train[columns].to_numpy(dtype="float64")
    medians = np.nan_to_num(np.nanmedian(raw, axis=0))
    filled = np.where(np.isnan(raw), medians, raw)
    means, stds = filled.mean(axis=0), filled.std(axis=0) + 1e-6
    model = TabularMLPModel(columns, medians, means, stds, _network(len(columns), p["hidden"], p["layers"]))
    data = FitData(
        x_train=model._tensor(train),
        y_train=torch.tensor(train[label].to_numpy(dtype="float32")).unsqueeze(1),
        x_val=model._tensor(validation),
        y_val=torch.tensor(validation[label].to_numpy(dtype="float32")).unsqueeze(1),
        inputs=len(columns),
        params=p,
    )
    if workers:
        from kosmos.training.distributed import fit_on_ray

        result = fit_on_ray(data, workers)
        best_state, best_loss, epochs = result.state, result.best_loss, result.epochs
        for epoch, train_loss, val_loss in result.history:
            run.log_metrics({"train_loss": train_loss, "validation_loss": val_loss}, step=epoch)
        run.client.set_tag(run.run_id, TAG_RAY_NODES, ",".join(result.nodes))
    else:

        def on_epoch(epoch: int, train_loss: float, val_loss: float) -> None:
            run.log_metrics({"train_loss": train_loss, "validation_loss": val_loss}, step=epoch)

        best_state, best_loss, epochs = fit(data, on_epoch=on_epoch)
    model.network.load_state_dict(best_state)
    scores = model.predict_proba(holdout)
    y_true = holdout[label].to_numpy()
    metrics = evaluate(y_true, scores) | {"epochs": float(epochs), "best_validation_loss": best_loss}
    run.log_metrics(metrics)
    figs = figures(y_true, scores, threshold=float(np.quantile(scores, 0.98)))
    for path, fig in figs.items():
        run.log_figure(fig, path)
    close(figs)
    run.log_pyfunc(model, input_example=holdout[columns].head(5), holdout=holdout, label=label)
    return metrics
