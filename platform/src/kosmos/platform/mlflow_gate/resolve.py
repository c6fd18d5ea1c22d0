"""The project an MLflow object belongs to, read from MLflow's own stores in its server process.

An experiment's project is the prefix of its name (``<project>/...``) and a registered
model's the prefix of its (``<project>.``). The gate never lets a user create or rename
one outside a project they hold, so neither changes once made: lookups are cached.
"""

from __future__ import annotations

import functools

from mlflow.exceptions import MlflowException

from kosmos.platform.mlflow_gate.rules import Target, project_of_experiment_name, project_of_model_name


class ProjectResolver:
    """Target -> project name, or None when it belongs to no project (or does not exist)."""

    def __init__(self) -> None:
        from mlflow.server import handlers

        self._tracking = handlers._get_tracking_store

    def project(self, target: Target) -> str | None:
        kind, value = target.kind, target.value
        if kind == "experiment_name":
            return project_of_experiment_name(value)
        if kind == "model":
            return project_of_model_name(value)
        experiment = {
            "experiment_id": lambda v: v,
            "run": self._experiment_of_run,
            "logged_model": self._experiment_of_logged_model,
            "trace": self._experiment_of_trace,
            "artifact": _experiment_of_artifact,
        }[kind](value)
        return self._project_of_experiment(experiment) if experiment is not None else None

    @functools.lru_cache(maxsize=10_000)  # noqa: B019 (one resolver per process)
    def _project_of_experiment(self, experiment_id: str) -> str | None:
        try:
            return project_of_experiment_name(self._tracking().get_experiment(experiment_id).name)
        except MlflowException:
            return None

    @functools.lru_cache(maxsize=100_000)  # noqa: B019
    def _experiment_of_run(self, run_id: str) -> str | None:
        try:
            return self._tracking().get_run(run_id).info.experiment_id
        except MlflowException:
            return None

    @functools.lru_cache(maxsize=10_000)  # noqa: B019
    def _experiment_of_logged_model(self, model_id: str) -> str | None:
        try:
            return self._tracking().get_logged_model(model_id).experiment_id
        except MlflowException:
            return None

    @functools.lru_cache(maxsize=10_000)  # noqa: B019
    def _experiment_of_trace(self, trace_id: str) -> str | None:
        try:
            info = self._tracking().get_trace_info(trace_id)
        except MlflowException:
            return None
        location = getattr(info.trace_location, "mlflow_experiment", None)
        return getattr(location, "experiment_id", None) or getattr(info, "experiment_id", None)


def _experiment_of_artifact(path: str) -> str | None:
    """Proxied artifacts live under ``<experiment id>/...`` (runs, logged models, traces alike)."""
    first = path.lstrip("/").split("/", 1)[0]
    return first if first.isdigit() and ".." not in path.split("/") else None
