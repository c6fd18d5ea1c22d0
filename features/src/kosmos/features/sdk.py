"""The features SDK: what a notebook calls. Every call goes through the control plane."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from kosmos.platform.client import KosmosClient, client_or_default


def list_features(project: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """Entities, feature views, on-demand views, feature services and the last pipeline run."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/features")


def get_online(
    project: str,
    entities: Mapping[str, Sequence[Any]],
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    request_data: Mapping[str, Sequence[Any]] | None = None,
    client: KosmosClient | None = None,
) -> dict[str, list[Any]]:
    """Latest feature values, e.g. ``get_online("demo", {"user_id": [7]}, feature_service=...)``."""
    body = {
        "entities": dict(entities),
        "feature_service": feature_service,
        "features": list(features) if features else None,
        "request_data": dict(request_data) if request_data else None,
    }
    with client_or_default(client) as c:
        return c.dataplane(f"/{project}/features/online", body)


def get_training_set(
    project: str,
    entity_df: pd.DataFrame,
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    client: KosmosClient | None = None,
) -> pd.DataFrame:
    """The entity frame joined point-in-time correctly with the features."""
    frame = entity_df.copy()
    if "event_timestamp" in frame.columns and pd.api.types.is_datetime64_any_dtype(frame["event_timestamp"]):
        ts = frame["event_timestamp"]
        frame["event_timestamp"] = [t.isoformat() for t in ts]
    body = {
        "entity_df": {c: frame[c].tolist() for c in frame.columns},
        "feature_service": feature_service,
        "features": list(features) if features else None,
    }
    with client_or_default(client) as c:
        result = c.post(f"/projects/{project}/features/training-set", body)
    out = pd.DataFrame(result["data"], columns=result["columns"])
    if "event_timestamp" in out.columns:
        out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True, format="ISO8601")
    return out


def run_pipelines(
    project: str, *, materialize: bool = True, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Recompute the offline sources and materialize into the online store."""
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/features/pipelines/run", {"materialize": materialize})


def feature_stats(project: str, view: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """Rows, freshness, null rates, min/max/mean/quantiles of a feature view."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/features/views/{view}/stats")


def feature_drift(
    project: str,
    view: str,
    *,
    reference: tuple[datetime, datetime] | None = None,
    current: tuple[datetime, datetime] | None = None,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """PSI per feature between two windows (default: the week before last vs. last week)."""
    params: dict[str, Any] = {}
    if reference:
        params |= {"reference_start": reference[0].isoformat(), "reference_end": reference[1].isoformat()}
    if current:
        params |= {"current_start": current[0].isoformat(), "current_end": current[1].isoformat()}
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/features/views/{view}/drift", **params)
