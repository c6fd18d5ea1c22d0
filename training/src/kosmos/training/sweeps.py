"""Hyperparameter sweeps: one parent run, a child run per parameter set, the best picked by a metric."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kosmos.training.tracking import TrainingRun, run

TrainFn = Callable[[TrainingRun, pd.DataFrame, dict[str, Any]], Mapping[str, float]]


@dataclass(frozen=True)
class SweepResult:
    parent_run_id: str
    best_run_id: str
    best_params: dict[str, Any]
    best_value: float
    table: pd.DataFrame
    """One row per child run: its parameters and metrics, best first."""


def sweep(
    project: str,
    experiment: str,
    grid: Sequence[Mapping[str, Any]],
    train: TrainFn,
    *,
    metric: str,
    dataset: str | tuple[str, int | None],
    maximize: bool = True,
    **run_kwargs: Any,
) -> SweepResult:
    """Train once per parameter set under one parent run; the best child is tagged on the parent."""
    if not grid:
        raise ValueError("the sweep needs at least one parameter set")
    rows = []
    trials: dict[str, dict[str, Any]] = {}  # a trial's own parameters: the grid's entries may differ in keys
    with run(project, experiment, dataset=dataset, run_name=f"sweep-{metric}", **run_kwargs) as parent:
        parent.log_params({"sweep.size": len(grid), "sweep.metric": metric})
        for i, params in enumerate(grid):
            with run(
                project,
                experiment,
                dataset=dataset,
                run_name=f"trial-{i}",
                parent_run_id=parent.run_id,
                **run_kwargs,
            ) as child:
                metrics = dict(train(child, child.data, dict(params)))
            if metric not in metrics:
                raise KeyError(f"the train function returned no {metric!r}; it returned {sorted(metrics)}")
            trials[child.run_id] = dict(params)
            rows.append({"run_id": child.run_id, **dict(params), **metrics})
        table = pd.DataFrame(rows).sort_values(metric, ascending=not maximize).reset_index(drop=True)
        best = table.iloc[0]
        parent.log_metrics({f"best_{metric}": float(best[metric])})
        parent.client.set_tag(parent.run_id, "kosmos.sweep.best_run", best["run_id"])
    best_params = trials[str(best["run_id"])]
    return SweepResult(
        parent_run_id=parent.run_id,
        best_run_id=str(best["run_id"]),
        best_params=best_params,
        best_value=float(best[metric]),
        table=table,
    )
