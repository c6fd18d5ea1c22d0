"""The MLflow model registry and run store, namespaced per project, with lineage.

Registered models are named ``<project>.<name>``; experiments ``<project>/<name>``.
Runs and models of another project answer exactly like missing ones.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import requests
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from kosmos.platform.errors import InvalidInput, NotFound, ServiceUnavailable
from kosmos.platform.settings import Settings
from kosmos.training.tracking import (
    TAG_COMMIT,
    TAG_DATASET,
    TAG_DIRTY,
    TAG_PROJECT,
    TAG_REPO,
    TAG_WEIGHTS_SOURCE,
)

P = ParamSpec("P")
R = TypeVar("R")


def model_name(project: str, name: str) -> str:
    return f"{project}.{name}"


def _client(settings: Settings) -> MlflowClient:
    return MlflowClient(settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def mlflow_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """An MLflow that does not answer is a 503 naming it, not a 500."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (MlflowException, requests.RequestException) as exc:
            message = getattr(exc, "message", str(exc))
            raise ServiceUnavailable(f"MLflow did not answer as expected: {message}") from exc

    return wrapper


def _run_out(run: Run) -> dict[str, Any]:
    info, data = run.info, run.data
    inputs = [
        {"name": d.dataset.name, "digest": d.dataset.digest, "source": d.dataset.source}
        for d in (run.inputs.dataset_inputs if run.inputs else [])
    ]
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "start_time": _ts(info.start_time),
        "end_time": _ts(info.end_time),
        "params": data.params,
        "metrics": data.metrics,
        "tags": {k: v for k, v in data.tags.items() if k.startswith(("kosmos.", "mlflow.source.git"))},
        "parent_run_id": data.tags.get("mlflow.parentRunId"),
        "datasets": inputs,
    }


def _ts(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if ms else None


def _project_run(client: MlflowClient, project: str, run_id: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        run = None
    if run is None or run.data.tags.get(TAG_PROJECT) != project:
        raise NotFound(f"run {run_id!r} not found in project {project!r}")
    return run


@mlflow_errors
def search_runs(
    settings: Settings,
    project: str,
    *,
    experiment: str | None = None,
    filter_string: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    client = _client(settings)
    pattern = f"{project}/{experiment}" if experiment else f"{project}/%"
    experiments = client.search_experiments(filter_string=f"name LIKE '{pattern}'")
    if not experiments:
        return []
    try:
        runs = client.search_runs(
            [e.experiment_id for e in experiments],
            filter_string=filter_string or "",
            max_results=limit,
            order_by=["attributes.start_time DESC"],
        )
    except MlflowException as exc:
        raise InvalidInput.field("filter", str(exc.message)) from exc
    names = {e.experiment_id: e.name.split("/", 1)[1] for e in experiments}
    return [
        {**_run_out(r), "experiment": names[r.info.experiment_id]}
        for r in runs
        if r.data.tags.get(TAG_PROJECT) == project
    ]


@mlflow_errors
def get_run(settings: Settings, project: str, run_id: str) -> dict[str, Any]:
    return _run_out(_project_run(_client(settings), project, run_id))


@mlflow_errors
def metric_history(settings: Settings, project: str, run_id: str, key: str) -> list[dict[str, Any]]:
    """Every logged value of one metric of a run, by step (for curves)."""
    client = _client(settings)
    _project_run(client, project, run_id)
    return [
        {"step": m.step, "value": m.value, "timestamp": _ts(m.timestamp)}
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    ]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
MAX_ARTIFACT_BYTES = 20 * 1024 * 1024


@mlflow_errors
def run_images(settings: Settings, project: str, run_id: str) -> list[str]:
    """Paths of a run's image artifacts (ROC and PR curves, confusion matrix), two folders deep."""
    client = _client(settings)
    _project_run(client, project, run_id)
    found, folders = [], [""]
    for _ in range(3):
        next_folders = []
        for folder in folders:
            for item in client.list_artifacts(run_id, folder or None):
                if item.is_dir:
                    next_folders.append(item.path)
                elif item.path.lower().endswith(IMAGE_SUFFIXES):
                    found.append(item.path)
        folders = next_folders
    return sorted(found)


@mlflow_errors
def run_image(settings: Settings, project: str, run_id: str, path: str) -> bytes:
    """One image artifact of a run; only the images ``run_images`` lists are served."""
    if path not in run_images(settings, project, run_id):
        raise NotFound(f"run {run_id!r} has no image artifact {path!r}")
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as folder:
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=folder, tracking_uri=settings.mlflow_tracking_uri
            )
        )
        if local.stat().st_size > MAX_ARTIFACT_BYTES:
            raise InvalidInput.field("path", f"{path} is larger than {MAX_ARTIFACT_BYTES} bytes")
        return local.read_bytes()


@mlflow_errors
def register_model(
    settings: Settings, project: str, name: str, run_id: str, artifact: str, *, actor: str
) -> dict[str, Any]:
    """Register the model ``artifact`` of ``run_id``; refused without code version, data or signature."""
    from mlflow.models import get_model_info

    client = _client(settings)
    run = _project_run(client, project, run_id)
    tags = run.data.tags
    if run.info.status != "FINISHED":
        raise InvalidInput.field(
            "run_id", f"run {run_id} ended {run.info.status}; only finished runs can be registered"
        )
    if TAG_COMMIT not in tags or TAG_REPO not in tags:  # MLflow sets the commit tag on its own too
        raise InvalidInput.field("run_id", "the run has no code version: train from a git repository")
    if TAG_DATASET not in tags and TAG_WEIGHTS_SOURCE not in tags:
        raise InvalidInput.field(
            "run_id",
            "the run has no dataset version: open it with dataset=... "
            "(or, for imported pretrained weights, record their source with log_weights_source)",
        )
    uri = f"runs:/{run_id}/{artifact}"
    try:
        info = get_model_info(uri)
    except (MlflowException, OSError) as exc:
        raise NotFound(f"run {run_id} logged no model named {artifact!r}") from exc
    if info.signature is None:
        raise InvalidInput.field("artifact", "the model was logged without a signature")
    full = model_name(project, name)
    try:
        client.get_registered_model(full)
    except MlflowException:
        client.create_registered_model(full, tags={TAG_PROJECT: project})
    try:
        version = client.create_model_version(
            full,
            source=info.model_uri,
            run_id=run_id,
            model_id=info.model_id,
            tags={
                "kosmos.registered_by": actor,
                TAG_COMMIT: tags[TAG_COMMIT],
                **{t: tags[t] for t in (TAG_DATASET, TAG_WEIGHTS_SOURCE) if t in tags},
            },
        )
    except MlflowException as exc:
        raise ServiceUnavailable(f"MLflow refused to register the model: {exc.message}") from exc
    return {"name": name, "version": int(version.version), "run_id": run_id, "source": info.model_uri}


def _versions(client: MlflowClient, full: str) -> list[Any]:
    return sorted(client.search_model_versions(f"name = '{full}'"), key=lambda v: int(v.version))


@mlflow_errors
def list_models(settings: Settings, project: str) -> list[dict[str, Any]]:
    client = _client(settings)
    out = []
    for model in client.search_registered_models(filter_string=f"name LIKE '{project}.%'"):
        if model.tags.get(TAG_PROJECT) != project:
            continue
        versions = _versions(client, model.name)
        out.append(
            {
                "name": model.name.split(".", 1)[1],
                "latest_version": int(versions[-1].version) if versions else None,
                "aliases": {a: int(v) for a, v in model.aliases.items()},
            }
        )
    return out


def _model(client: MlflowClient, project: str, name: str) -> Any:
    try:
        model = client.get_registered_model(model_name(project, name))
    except MlflowException:
        model = None
    if model is None or model.tags.get(TAG_PROJECT) != project:
        raise NotFound(f"model {name!r} not found in project {project!r}")
    return model


@mlflow_errors
def show_model(settings: Settings, project: str, name: str) -> dict[str, Any]:
    """Versions side by side: their runs' metrics, aliases, who registered and promoted them."""
    client = _client(settings)
    model = _model(client, project, name)
    versions = []
    for v in _versions(client, model.name):
        metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
        versions.append(
            {
                "version": int(v.version),
                "run_id": v.run_id,
                "metrics": metrics,
                "aliases": [a for a, n in model.aliases.items() if n == v.version],
                "tags": v.tags,
                "created_at": _ts(v.creation_timestamp),
            }
        )
    return {"name": name, "aliases": {a: int(n) for a, n in model.aliases.items()}, "versions": versions}


@mlflow_errors
def version_metrics(settings: Settings, project: str, name: str, version: int) -> dict[str, float]:
    """The metrics of the run behind one model version (one version read and one run read)."""
    client = _client(settings)
    mv = client.get_model_version(model_name(project, name), str(version))
    return client.get_run(mv.run_id).data.metrics if mv.run_id else {}


@mlflow_errors
def promote(
    settings: Settings, project: str, name: str, version: int, alias: str, *, actor: str, reason: str
) -> dict[str, Any]:
    client = _client(settings)
    model = _model(client, project, name)
    try:
        client.get_model_version(model.name, str(version))
    except MlflowException:
        raise NotFound(f"model {name!r} has no version {version}") from None
    previous = model.aliases.get(alias)
    client.set_registered_model_alias(model.name, alias, str(version))
    now = datetime.now(UTC).isoformat()
    for key, value in (("by", actor), ("reason", reason), ("at", now)):
        client.set_model_version_tag(model.name, str(version), f"kosmos.{alias}.{key}", value)
    return {
        "name": name,
        "alias": alias,
        "version": version,
        "previous_version": int(previous) if previous else None,
        "by": actor,
        "at": now,
    }


def resolve_version(client: MlflowClient, project: str, name: str, version: str) -> Any:
    model = _model(client, project, name)
    try:
        if version.isdigit():
            return client.get_model_version(model.name, version)
        return client.get_model_version_by_alias(model.name, version)
    except MlflowException:
        raise NotFound(f"model {name!r} has no version or alias {version!r}") from None


@mlflow_errors
def lineage(settings: Settings, project: str, name: str, version: str) -> dict[str, Any]:
    """Model version -> run -> git commit -> dataset version -> feature service -> feature views."""
    from kosmos.training.datasets import DatasetRepo

    client = _client(settings)
    mv = resolve_version(client, project, name, version)
    run = client.get_run(mv.run_id)
    tags = run.data.tags
    out: dict[str, Any] = {
        "model": {"name": name, "version": int(mv.version), "aliases": list(mv.aliases or [])},
        "run": {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status,
            "metrics": run.data.metrics,
            "params": run.data.params,
            "entry_point": tags.get("mlflow.source.name"),
        },
        "code": {
            "commit": tags.get(TAG_COMMIT),
            "dirty": tags.get(TAG_DIRTY) == "true",
            "repo": tags.get(TAG_REPO),
        },
        "dataset": None,
        "features": None,
    }
    uri = tags.get(TAG_DATASET, "")
    if uri.startswith("kosmos-dataset://"):
        ds_name, _, ds_version = uri.removeprefix("kosmos-dataset://").rpartition("/v")
        meta = DatasetRepo(settings, project).get(ds_name, int(ds_version))
        out["dataset"] = {
            "name": ds_name,
            "version": meta.version,
            "uri": uri,
            "hash": meta.content_hash,
            "rows": meta.rows,
            "time_range": meta.time_range,
            "commit": meta.commit,
            "feature_service": meta.feature_service,
            "feature_version": meta.feature_version,
        }
        if meta.feature_service:
            out["features"] = {
                **_feature_lineage(settings, project, meta.feature_service),
                "version": meta.feature_version,
            }
    return out


def _feature_lineage(settings: Settings, project: str, service: str) -> dict[str, Any]:
    from kosmos.features.repo import feature_repo

    repo = feature_repo(settings, project)
    if not repo.exists():
        return {"feature_service": service, "feature_views": []}
    fs = repo.store().get_feature_service(service)
    return {
        "feature_service": service,
        "feature_views": [
            {"name": p.name, "features": [f.name for f in p.features]} for p in fs.feature_view_projections
        ],
    }
