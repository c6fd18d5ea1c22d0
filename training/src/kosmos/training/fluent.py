"""``kosmos.datasets``, ``kosmos.training`` and ``kosmos.models`` in a notebook."""

from __future__ import annotations

from kosmos.platform.fluent import Namespace, bind
from kosmos.training import sdk, tracking

datasets = Namespace(
    "datasets",
    "DVC-versioned datasets: register, list, versions, load, diff.",
    register=bind(sdk.register_dataset, "register"),
    list=bind(sdk.list_datasets, "list"),
    versions=bind(sdk.dataset_versions, "versions"),
    version=bind(sdk.dataset_version, "version"),
    load=bind(sdk.load_dataset, "load"),
    diff=bind(sdk.diff_datasets, "diff"),
)
training = Namespace(
    "training",
    "Tracked training runs on MLflow: start (a run, as a context manager), runs, get_run, compare.",
    start=bind(tracking.run, "start"),
    runs=bind(sdk.list_runs, "runs"),
    get_run=bind(sdk.get_run, "get_run"),
    compare=bind(sdk.compare_runs, "compare"),
)
models = Namespace(
    "models",
    "The model registry: register, list, show, promote (aliases), lineage.",
    register=bind(sdk.register_model, "register"),
    list=bind(sdk.list_models, "list"),
    show=bind(sdk.show_model, "show"),
    promote=bind(sdk.promote, "promote"),
    lineage=bind(sdk.lineage, "lineage"),
)
