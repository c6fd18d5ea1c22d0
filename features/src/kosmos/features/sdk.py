"""The features SDK: what a notebook calls. Every call goes through the control plane."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from kosmos.platform.client import KosmosClient, client_or_default
from kosmos.platform.errors import InvalidInput, KosmosError


def list_features(project: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """Entities, feature views, on-demand views, feature services and the last pipeline run."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/features")


def apply_repository(
    project: str, path: str | Path = ".", *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Apply the feature repository in folder ``path`` (its ``*.py`` files) as the project's next version.

    The server loads the files in a child process, checks every definition and applies them to
    Feast only if all of them pass; the same files as the current version change nothing.
    Returns the definitions by kind, ``version`` and ``changed``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InvalidInput.field("path", f"{folder} is not a folder")
    files = {}
    for file in sorted(folder.glob("*.py")):
        if file.name == "__init__.py":
            continue
        try:
            files[file.name] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput.field(f"files.{file.name}", f"not UTF-8 text: {exc}") from None
    if not files:
        raise InvalidInput.field("path", f"{folder} holds no .py files of Feast definitions")
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/features/apply", {"files": files})


def upload_table(
    project: str, name: str, data: pd.DataFrame | str | Path, *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Make a frame (or a parquet/CSV file) the project's table ``name`` (``data/tables/<name>.parquet``).

    A CSV's columns of ISO 8601 times become UTC timestamps; a frame or parquet keeps its types.
    A pipeline function reads it by naming a parameter ``name``; a Feast ``FileSource`` reads it
    at ``data/tables/<name>.parquet``. Uploading again replaces it.
    """
    if isinstance(data, pd.DataFrame):
        buffer = io.BytesIO()
        data.to_parquet(buffer, index=False)
        content = buffer.getvalue()
    else:
        file = Path(data)
        if file.suffix == ".parquet":
            content = file.read_bytes()
        else:
            buffer = io.BytesIO()
            _with_timestamps(pd.read_csv(file)).to_parquet(buffer, index=False)
            content = buffer.getvalue()
    with client_or_default(client) as c:
        return c.request("PUT", f"/projects/{project}/features/tables/{name}", content=content)


def _with_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV's text columns that are all ISO 8601 times become UTC timestamps (parquet keeps types)."""
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].notna().any():
            try:
                frame[column] = pd.to_datetime(frame[column], format="ISO8601", utc=True)
            except (ValueError, TypeError):
                continue
    return frame


def set_schedule(
    project: str, every_minutes: int | None, *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Run the project's pipelines every ``every_minutes`` (0: on demand only; None: the platform's)."""
    with client_or_default(client) as c:
        return c.put(f"/projects/{project}/features/schedule", {"every_minutes": every_minutes})


def list_tables(project: str, *, client: KosmosClient | None = None) -> list[dict[str, Any]]:
    """The project's tables: name, rows, columns and size."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/features/tables")


def list_versions(project: str, *, client: KosmosClient | None = None) -> list[dict[str, Any]]:
    """Every applied version of the project's feature repository, oldest first."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/features/versions")


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


ROW_COLUMN = "_kosmos_row"
"""Each label row's position, sent with it: the offline store returns rows in its own order."""
CHUNK_BYTES = 8 * 1024 * 1024
"""About this much JSON per request (the route takes up to ``server.max_body_bytes``)."""


def get_training_set(
    project: str,
    entity_df: pd.DataFrame,
    *,
    feature_service: str | None = None,
    features: Sequence[str] | None = None,
    client: KosmosClient | None = None,
) -> pd.DataFrame:
    """The entity frame joined point-in-time correctly with the features.

    The label frame comes back as it was given (its rows in their order, its index, its dtypes
    and its timestamps to the microsecond) with the feature columns added; integer features are
    nullable ``Int64``. A large frame is sent in parts (each row's join is its own)."""
    frame = entity_df.reset_index(drop=True)
    frame[ROW_COLUMN] = range(len(frame))
    if "event_timestamp" in frame.columns and pd.api.types.is_datetime64_any_dtype(frame["event_timestamp"]):
        frame["event_timestamp"] = [t.isoformat() for t in frame["event_timestamp"]]
    sample = frame.head(200)
    per_row = max(
        1,
        len(json.dumps({c: sample[c].tolist() for c in sample.columns}, default=str)) // max(1, len(sample)),
    )
    chunk = max(1, CHUNK_BYTES // per_row)
    parts, dtypes = [], {}
    with client_or_default(client) as c:
        for start in range(0, max(len(frame), 1), chunk):
            part = frame.iloc[start : start + chunk]
            body = {
                "entity_df": {col: part[col].tolist() for col in part.columns},
                "feature_service": feature_service,
                "features": list(features) if features else None,
            }
            result = c.post(f"/projects/{project}/features/training-set", body)
            parts.append(pd.DataFrame(result["data"], columns=result["columns"]))
            dtypes = result.get("dtypes") or dtypes
    joined = pd.concat(parts, ignore_index=True).sort_values(ROW_COLUMN)
    if len(joined) != len(entity_df):
        raise KosmosError(f"the training set has {len(joined)} rows for {len(entity_df)} labels")
    out = entity_df.copy()
    for column in joined.columns:
        if column in entity_df.columns or column == ROW_COLUMN:
            continue
        values = joined[column].to_numpy()
        out[column] = pd.array(values, dtype="Int64") if dtypes.get(column) == "Int64" else values
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
