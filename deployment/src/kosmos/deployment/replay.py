"""``kosmos replay``: recompute a tabular decision from its record alone, and look for skew.

    record --> model input (input as received + the recorded feature values, as the replica joined them)
           --> the recorded model version, loaded in a Ray task (user code never runs in the
               control plane), through the node-local model cache  --> same output?
           --> today's champion on the same input                  --> would it decide otherwise?
    record --> the same features point-in-time from the offline store as of the request's time
           --> differences from the values served online: training/serving skew

A replay of a prediction gives the recorded output bit for bit when the model is deterministic
(``exact``); ``max_abs_diff`` says by how much it differs otherwise. Text inputs were redacted
before the record was written, so a model that reads PII fields cannot be replayed exactly;
the answer says when that happened (``redacted``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from kosmos.deployment import explain
from kosmos.deployment.service import resolve
from kosmos.platform.context import CallContext
from kosmos.platform.errors import InvalidInput, KosmosError, NotFound
from kosmos.platform.settings import Settings

SKEW_TOLERANCE = 1e-6
"""Relative difference above which an online value and its point-in-time value count as skewed
(the online store keeps float32 where the offline files may keep float64)."""


def model_inputs(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows as the replica got them: the request's values win over the joined features."""
    features = record.get("features") or {}
    rows = []
    for i, received in enumerate(record.get("input") or []):
        row = dict(received)
        for column, item in features.items():
            row.setdefault(column, item["values"][i])
        rows.append(row)
    return rows


def _predict_versions(
    settings: dict[str, Any], project: str, model: str, versions: list[int], rows: list[dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """In a Ray task: each version's predictions on ``rows`` (or why it could not)."""
    import mlflow.pyfunc

    from kosmos.deployment.model_cache import fetch_version
    from kosmos.deployment.serving import failure_cause, input_columns, predict_rows

    config = Settings(**settings)
    out: dict[int, dict[str, Any]] = {}
    for version in versions:
        try:
            cached = fetch_version(config, project, model, version)
            loaded = mlflow.pyfunc.load_model(str(cached.path))
            columns = input_columns(loaded)
            clean = [{k: row.get(k) for k in columns} for row in rows]
            out[version] = {"predictions": predict_rows(loaded, columns, clean)}
        except Exception as exc:
            out[version] = {"error": failure_cause(exc)}
    return out


def _run_in_ray(settings: Settings, *args: Any) -> dict[int, dict[str, Any]]:
    import ray

    from kosmos.platform.ray_cluster import connect

    connect(settings)
    task = ray.remote(num_cpus=0)(_predict_versions)  # a one-off: it waits on no replica's CPU
    return ray.get(task.remote(settings.model_dump(mode="json"), *args), timeout=300)


def compare(recorded: list[Any], replayed: list[Any]) -> dict[str, Any]:
    """Whether two prediction lists are identical, and their largest numeric difference."""
    exact = recorded == replayed
    try:
        a = np.asarray(recorded, dtype="float64").ravel()
        b = np.asarray(replayed, dtype="float64").ravel()
        diff = float(np.nanmax(np.abs(a - b))) if a.shape == b.shape and a.size else None
    except (TypeError, ValueError):
        diff = None
    return {"exact": exact, "max_abs_diff": 0.0 if exact else diff}


def decisions_of(predictions: list[Any], classes: list[Any] | None) -> list[Any]:
    """What each prediction decides: the top class for probabilities, the value itself otherwise."""
    out = []
    for p in predictions:
        if isinstance(p, list) and p:
            top = int(np.argmax(p))
            out.append(classes[top] if classes and top < len(classes) else top)
        else:
            out.append(p)
    return out


def skew(settings: Settings, project: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record's online feature values against the offline store's point-in-time values as of
    the request's time: per column, the rows that differ."""
    from kosmos.features.repo import feature_repo
    from kosmos.features.serving import get_training_set

    service = record.get("feature_service")
    features = record.get("features") or {}
    if not service or not features:
        return {"checked": False, "reason": "the prediction joined no online features"}
    import pandas as pd

    at = pd.Timestamp(datetime.fromisoformat(record["at"])).tz_convert(UTC)
    entity = pd.DataFrame(record["input"])
    entity["event_timestamp"] = at
    try:
        frame = get_training_set(feature_repo(settings, project), entity, feature_service=service)
    except KosmosError as exc:
        return {"checked": False, "reason": f"the offline store could not answer: {exc}"}
    differences: dict[str, list[dict[str, Any]]] = {}
    for column, item in features.items():
        if column not in frame.columns:
            continue
        for i, online in enumerate(item["values"]):
            offline = _plain(frame[column].iloc[i])
            if not _same(online, offline):
                differences.setdefault(column, []).append({"row": i, "online": online, "offline": offline})
    return {
        "checked": True,
        "as_of": at.isoformat(),
        "columns": sorted(c for c in features if c in frame.columns),
        "skewed": differences,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=SKEW_TOLERANCE, abs_tol=1e-9)
    return a == b


def replay(
    ctx: CallContext, settings: Settings, project: str, request_id: str, against: str | None = "champion"
) -> dict[str, Any]:
    """Recompute a prediction from its record; compare with ``against`` (an alias or version) and
    the offline store's point-in-time features."""
    record = explain.merged(explain.records(ctx, project, request_id))
    ctx.audit("decision.replay", "decision", request_id, project=project)
    if record.get("kind") != "model":  # the package that adds the kind replays it (genai: LLM calls)
        from kosmos.platform.plugins import deployment_kind

        try:
            replayer = getattr(deployment_kind(record.get("kind") or ""), "replay", None)
        except KeyError:
            replayer = None
        if replayer is None:
            raise InvalidInput.field(
                "request_id", f"{request_id!r} is a {record.get('kind')} call: no replay"
            )
        return replayer(settings, project, record)
    model, version = record.get("model"), record.get("model_version")
    if not model or version is None or record.get("output") is None:
        raise InvalidInput.field(
            "request_id", f"{request_id!r} has no prediction to replay ({record.get('error')})"
        )
    versions = [int(version)]
    other: int | None = None
    if against:
        try:
            other = resolve(settings, project, model, against)
        except NotFound as exc:  # the caller's choice: name it, never compare against nothing
            raise InvalidInput.field("against", exc.message) from None
        if other not in versions:
            versions.append(other)
    rows = model_inputs(record)
    results = _run_in_ray(settings, project, model, versions, rows)
    recorded = record["output"]["predictions"]
    mine = results[int(version)]
    answer: dict[str, Any] = {
        "request_id": request_id,
        "model": model,
        "model_version": version,
        "redacted": record.get("redacted", 0),
        "recorded": recorded,
        "replayed": mine.get("predictions"),
        "error": mine.get("error"),
        **(compare(recorded, mine["predictions"]) if "predictions" in mine else {"exact": False}),
    }
    if against:
        classes = record["output"].get("classes")
        found: dict[str, Any] = {"alias": against, "version": other}
        if other is not None:
            theirs = results[other]
            found["predictions"] = theirs.get("predictions")
            found["error"] = theirs.get("error")
            if "predictions" in theirs:
                ours, new = decisions_of(recorded, classes), decisions_of(theirs["predictions"], classes)
                found["decides_differently"] = [
                    i for i, (a, b) in enumerate(zip(ours, new, strict=True)) if a != b
                ]
        answer["against"] = found
    answer["skew"] = skew(settings, project, record)
    return answer
