"""Feature statistics and drift, read from the offline sources the pipelines write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FileSource

from kosmos.features.definitions import source_path
from kosmos.features.repo import FeatureRepo
from kosmos.platform.errors import InvalidInput, NotFound

_EPS = 1e-4

PSI_DRIFT = 0.2
"""A population stability index above this is drift (the usual rule of thumb: 0.1 watch, 0.2 act)."""


def _view_frame(repo: FeatureRepo, view_name: str) -> tuple[pd.DataFrame, list[str], timedelta | None]:
    """The view's offline rows (its event time as ``event_timestamp``) and its feature names."""
    store = repo.store()
    views = {v.name: v for v in store.list_feature_views(allow_cache=True)}
    if view_name not in views:
        raise InvalidInput.field("view", f"unknown feature view {view_name!r}; valid: {sorted(views)}")
    view = views[view_name]
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise InvalidInput.field(
            "view", f"statistics read parquet sources; {view_name!r} has a {type(source).__name__}"
        )
    path = source_path(repo, source)
    if not path.is_file():
        raise NotFound(f"feature view {view_name!r} has no offline data yet; run the pipelines")
    frame = pd.read_parquet(path).rename(columns={source.timestamp_field: "event_timestamp"})
    return frame, [f.name for f in view.features], view.ttl


def feature_stats(repo: FeatureRepo, view_name: str) -> dict[str, Any]:
    """Rows, freshness, and per feature: null rate, min, max, mean and quantiles."""
    frame, features, ttl = _view_frame(repo, view_name)
    latest = frame["event_timestamp"].max() if len(frame) else None
    out: dict[str, Any] = {
        "view": view_name,
        "rows": len(frame),
        "latest_event": latest.isoformat() if latest is not None else None,
        "freshness_seconds": (datetime.now(UTC) - latest).total_seconds() if latest is not None else None,
        "ttl_seconds": ttl.total_seconds() if ttl else None,
        "online": _online_freshness(repo, view_name),
        "features": {},
    }
    for name in features:
        column = pd.to_numeric(frame[name], errors="coerce")
        valid = column.dropna()
        out["features"][name] = {
            "null_rate": float(column.isna().mean()) if len(column) else 0.0,
            "min": _num(valid.min()),
            "max": _num(valid.max()),
            "mean": _num(valid.mean()),
            "p05": _num(valid.quantile(0.05)),
            "p50": _num(valid.quantile(0.5)),
            "p95": _num(valid.quantile(0.95)),
        }
    return out


def _online_freshness(repo: FeatureRepo, view_name: str) -> dict[str, Any]:
    """What the online store serves of the view, from the last pipeline run: up to when it was
    materialized, its newest event, and that event's age (beside the offline freshness: a gap
    between the two is data that has not reached serving)."""
    from kosmos.features.runs import last_run

    run = last_run(repo) or {}
    newest = ((run.get("online") or {}).get(view_name) or {}).get("newest_event")
    return {
        "materialized_until": run.get("materialized_until"),
        "newest_event": newest,
        "freshness_seconds": (datetime.now(UTC) - pd.Timestamp(newest)).total_seconds() if newest else None,
    }


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float | None:
    """Population stability index over quantile bins of ``reference`` (nulls ignored)."""
    ref, cur = reference.dropna().to_numpy(float), current.dropna().to_numpy(float)
    if len(ref) == 0 or len(cur) == 0:
        return None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([ref.min() - 0.5, ref.max() + 0.5])
    edges[0], edges[-1] = -np.inf, np.inf
    ref_share = np.histogram(ref, edges)[0] / len(ref) + _EPS
    cur_share = np.histogram(cur, edges)[0] / len(cur) + _EPS
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def feature_drift(
    repo: FeatureRepo,
    view_name: str,
    *,
    reference: tuple[datetime, datetime] | None = None,
    current: tuple[datetime, datetime] | None = None,
) -> dict[str, Any]:
    """PSI per feature between two time windows (default: the week before last vs. last week)."""
    frame, features, _ = _view_frame(repo, view_name)
    if frame.empty:
        raise NotFound(f"feature view {view_name!r} has no rows")
    latest = frame["event_timestamp"].max()
    current = current or (latest - timedelta(days=7), latest + timedelta(microseconds=1))
    reference = reference or (current[0] - timedelta(days=7), current[0])
    for name, (start, end) in (("reference", reference), ("current", current)):
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidInput.field(name, "window bounds need a timezone")
        if start >= end:
            raise InvalidInput.field(name, "window start must be before its end")
    ts = frame["event_timestamp"]
    ref_rows = frame[(ts >= reference[0]) & (ts < reference[1])]
    cur_rows = frame[(ts >= current[0]) & (ts < current[1])]
    scores = {
        name: psi(
            pd.to_numeric(ref_rows[name], errors="coerce"), pd.to_numeric(cur_rows[name], errors="coerce")
        )
        for name in features
    }
    return {
        "view": view_name,
        "reference": [reference[0].isoformat(), reference[1].isoformat()],
        "current": [current[0].isoformat(), current[1].isoformat()],
        "rows": {"reference": len(ref_rows), "current": len(cur_rows)},
        "psi": scores,
        "threshold": PSI_DRIFT,
        "drifted": sorted(n for n, s in scores.items() if s is not None and s > PSI_DRIFT),
    }
