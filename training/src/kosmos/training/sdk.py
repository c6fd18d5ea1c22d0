"""The training SDK: datasets, runs and models of a project, through the control plane."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kosmos.platform.client import KosmosClient, client_or_default


# -- datasets ---------------------------------------------------------------------------------
def register_dataset(
    project: str,
    name: str,
    data: pd.DataFrame | str | Path,
    *,
    feature_service: str | None = None,
    description: str = "",
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Version a frame (or a parquet/CSV file) as the next version of ``name``."""
    if isinstance(data, pd.DataFrame):
        frame = data
    else:
        path = Path(data)
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    with client_or_default(client) as c:
        return c.request(
            "POST",
            f"/projects/{project}/datasets/{name}",
            content=buffer.getvalue(),
            params={"feature_service": feature_service, "description": description},
        )


def dataset_as_feature_table(
    project: str,
    name: str,
    version: int | None = None,
    *,
    table: str | None = None,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Make a dataset version (default: the latest) the project's feature table ``table``.

    Pipelines then read it by that name (default: the dataset's, ``-`` as ``_``), and the table
    shows the version as its origin (``kosmos.features.tables()``)."""
    with client_or_default(client) as c:
        return c.request(
            "POST",
            f"/projects/{project}/datasets/{name}/versions/{version or 'latest'}/feature-table",
            params={"table": table},
        )


def list_datasets(project: str, *, client: KosmosClient | None = None) -> list[dict[str, Any]]:
    """The project's registered datasets with their latest version."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/datasets")


def dataset_versions(project: str, name: str, *, client: KosmosClient | None = None) -> list[dict[str, Any]]:
    """Every version of dataset ``name``: DVC hash, rows, schema, who and when."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/datasets/{name}/versions")


def dataset_version(
    project: str, name: str, version: int | None = None, *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """One version's metadata; ``version=None`` means the latest."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/datasets/{name}/versions/{version or 'latest'}")


def load_dataset(
    project: str, name: str, version: int | None = None, *, client: KosmosClient | None = None
) -> pd.DataFrame:
    """The data of one version (read back through DVC on the platform)."""
    with client_or_default(client) as c:
        raw = c.request(
            "GET", f"/projects/{project}/datasets/{name}/versions/{version or 'latest'}/data", raw=True
        )
    return pd.read_parquet(io.BytesIO(raw))


def diff_datasets(
    project: str, name: str, a: int, b: int, *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """What changed between versions ``a`` and ``b`` of a dataset: rows, columns, statistics."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/datasets/{name}/diff", a=a, b=b)


# -- runs ---------------------------------------------------------------------------------------
def list_runs(
    project: str,
    experiment: str | None = None,
    *,
    filter: str | None = None,  # noqa: A002
    limit: int = 100,
    client: KosmosClient | None = None,
) -> list[dict[str, Any]]:
    """Training runs of the project, newest first (``experiment`` and an MLflow ``filter`` narrow them)."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/runs", experiment=experiment, filter=filter, limit=limit)


def get_run(project: str, run_id: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """One run: parameters, metrics, tags (code version, dataset), artifacts."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/runs/{run_id}")


def metric_history(
    project: str, run_id: str, key: str, *, client: KosmosClient | None = None
) -> list[dict[str, Any]]:
    """Every value of metric ``key`` of a run, by step: ``[{step, value, timestamp}]``."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/runs/{run_id}/metrics/{key}/history")


def run_images(project: str, run_id: str, *, client: KosmosClient | None = None) -> list[str]:
    """Paths of the run's image artifacts, e.g. ``evaluation/roc_curve.png``."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/runs/{run_id}/images")


def run_image(project: str, run_id: str, path: str, *, client: KosmosClient | None = None) -> bytes:
    """One image artifact's bytes."""
    with client_or_default(client) as c:
        return c.request("GET", f"/projects/{project}/runs/{run_id}/images/{path}", raw=True)


def compare_runs(project: str, run_ids: Sequence[str], *, client: KosmosClient | None = None) -> pd.DataFrame:
    """Runs side by side: one column per run, rows for params and metrics."""
    with client_or_default(client) as c:
        runs = c.request("GET", f"/projects/{project}/runs-compare", params={"run_id": list(run_ids)})
    table = {
        r["run_id"]: {
            **{f"param.{k}": v for k, v in r["params"].items()},
            **{f"metric.{k}": v for k, v in r["metrics"].items()},
        }
        for r in runs
    }
    return pd.DataFrame(table)


# -- models ---------------------------------------------------------------------------------------
def register_model(
    project: str, name: str, run_id: str, *, artifact: str = "model", client: KosmosClient | None = None
) -> dict[str, Any]:
    """Register the model logged by run ``run_id`` as a new version of ``name``."""
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/models/{name}", {"run_id": run_id, "artifact": artifact})


def list_models(project: str, *, client: KosmosClient | None = None) -> list[dict[str, Any]]:
    """The project's registered models with their aliases and latest version."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/models")


def show_model(project: str, name: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """Model ``name``: every version with its aliases, run, metrics and stage history."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/models/{name}")


def promote(
    project: str,
    name: str,
    version: int,
    *,
    alias: str = "champion",
    reason: str,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Point ``alias`` at ``version``; who and why are recorded on the version and in the audit log."""
    with client_or_default(client) as c:
        return c.post(
            f"/projects/{project}/models/{name}/promote",
            {"version": version, "alias": alias, "reason": reason},
        )


def lineage(
    project: str, name: str, version: int | str = "champion", *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Where a model version came from: run, code version, dataset version, features."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/models/{name}/versions/{version}/lineage")
