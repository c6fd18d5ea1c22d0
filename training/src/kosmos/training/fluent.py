"""``kosmos.datasets``, ``kosmos.training`` and ``kosmos.models`` in a notebook."""

from __future__ import annotations

from kosmos.platform.fluent import Namespace
from kosmos.training import sdk, tracking

datasets = Namespace(
    "datasets",
    "DVC-versioned datasets: register, list, versions, load, diff, as_feature_table.",
    register=sdk.register_dataset,
    list=sdk.list_datasets,
    versions=sdk.dataset_versions,
    version=sdk.dataset_version,
    load=sdk.load_dataset,
    diff=sdk.diff_datasets,
    as_feature_table=sdk.dataset_as_feature_table,
)
training = Namespace(
    "training",
    "Tracked training runs on MLflow: start (a run, as a context manager), runs, get_run, compare, "
    "metric_history, images, image.",
    start=tracking.run,
    runs=sdk.list_runs,
    get_run=sdk.get_run,
    compare=sdk.compare_runs,
    metric_history=sdk.metric_history,
    images=sdk.run_images,
    image=sdk.run_image,
)
models = Namespace(
    "models",
    "The model registry: register, list, show, promote (aliases), lineage.",
    register=sdk.register_model,
    list=sdk.list_models,
    show=sdk.show_model,
    promote=sdk.promote,
    lineage=sdk.lineage,
)
