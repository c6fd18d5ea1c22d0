"""The deployment SDK: create, roll out and watch deployments (control plane); predict (data plane)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kosmos.platform.client import KosmosClient, client_or_default
from kosmos.platform.errors import InvalidInput


def _base(project: str) -> str:
    return f"/projects/{project}/deployments"


def create(
    project: str, name: str, model: str, *, client: KosmosClient | None = None, **spec: Any
) -> dict[str, Any]:
    """Deploy ``model`` (``version='champion'`` by default; see DeploymentSpec for every option)."""
    with client_or_default(client) as c:
        return c.post(_base(project), {"name": name, "model": model, **spec})


def list_deployments(project: str, *, client: KosmosClient | None = None) -> list[dict[str, Any]]:
    """The project's deployments: model, versions, strategy, traffic, status."""
    with client_or_default(client) as c:
        return c.get(_base(project))


def status(project: str, name: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """One deployment: status and reason, traffic split, versions and live per-version stats."""
    with client_or_default(client) as c:
        return c.get(f"{_base(project)}/{name}")


def _settled(d: dict[str, Any]) -> bool:
    """Healthy (or unstable: the stable version serves, only its recent rollouts failed), no
    rollout under way, and the reconciler has applied the latest change (a state read before it
    did would still say healthy)."""
    applied = d["applied_generation"] >= d["generation"]
    return d["status"] in ("healthy", "unstable") and d["candidate_version"] is None and applied


def wait(
    project: str,
    name: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
    *,
    timeout_s: float = 300.0,
    on_change: Callable[[dict[str, Any]], None] | None = None,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Poll until ``until(deployment)`` holds (default: healthy, no rollout, the latest change
    applied) or it has failed.

    Returns the last state (check its ``status``); raises TimeoutError naming the
    last status. ``on_change`` sees each new status and reason.
    """
    until = until or _settled
    deadline = time.monotonic() + timeout_s
    last: tuple[str, str] | None = None
    with client_or_default(client) as c:
        while True:
            current = status(project, name, client=c)
            if on_change and (current["status"], current["reason"]) != last:
                on_change(current)
                last = (current["status"], current["reason"])
            if until(current) or current["status"] == "failed":
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployment {name!r} is still {current['status']}: {current['reason']}")
            time.sleep(0.5)


def rollout(
    project: str,
    name: str,
    version: str | int,
    *,
    strategy: str | None = None,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Move ``name`` to another model version with the spec's strategy, or ``strategy``."""
    with client_or_default(client) as c:
        return c.post(f"{_base(project)}/{name}/rollout", {"version": str(version), "strategy": strategy})


def promote(
    project: str, name: str, *, reason: str = "", client: KosmosClient | None = None
) -> dict[str, Any]:
    """Finish a running rollout now: the candidate takes all traffic."""
    with client_or_default(client) as c:
        return c.post(f"{_base(project)}/{name}/promote", {"reason": reason})


def rollback(
    project: str, name: str, *, reason: str = "", client: KosmosClient | None = None
) -> dict[str, Any]:
    """Abort a running rollout: the stable version takes all the traffic back."""
    with client_or_default(client) as c:
        return c.post(f"{_base(project)}/{name}/rollback", {"reason": reason})


def scale(
    project: str,
    name: str,
    *,
    replicas: int | None = None,
    autoscaling: dict[str, Any] | None = None,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Set a fixed number of replicas, or autoscaling bounds, per model version."""
    with client_or_default(client) as c:
        return c.post(f"{_base(project)}/{name}/scale", {"replicas": replicas, "autoscaling": autoscaling})


def delete(project: str, name: str, *, client: KosmosClient | None = None) -> None:
    """Remove the deployment and its Ray Serve applications."""
    with client_or_default(client) as c:
        c.delete(f"{_base(project)}/{name}")


def events(project: str, name: str, *, limit: int = 200, client: KosmosClient | None = None) -> list[dict]:
    """The deployment's history, newest first: rollouts, canary steps, promotions, rollbacks and
    their reasons, scaling, who did each (every project member may read it)."""
    with client_or_default(client) as c:
        return c.get(f"{_base(project)}/{name}/events", limit=limit)


def stats(
    project: str,
    name: str,
    *,
    since: float = 0.0,
    bucket_s: float = 0.0,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Requests, errors and latency percentiles per version since ``since`` (a UNIX time); with
    ``bucket_s``, each version's ``series`` of the same figures per bucket of that many seconds."""
    with client_or_default(client) as c:
        return c.get(f"{_base(project)}/{name}/stats", since=since, bucket_s=bucket_s)


def logs(
    project: str, name: str, *, limit: int = 50, client: KosmosClient | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` decision records of the deployment, a line each."""
    with client_or_default(client) as c:
        return c.get(f"{_base(project)}/{name}/logs", limit=limit)


Rows = list[dict[str, Any]] | Any
"""Rows of field: value, or a pandas DataFrame (one row per input)."""


def _rows(inputs: Rows) -> list[dict[str, Any]]:
    """JSON rows: a DataFrame's NaN become null, its timestamps ISO strings."""
    if hasattr(inputs, "to_json") and hasattr(inputs, "columns"):
        import json

        return json.loads(inputs.to_json(orient="records", date_format="iso"))
    return list(inputs)


def _frame(answer: dict[str, Any], inputs: Any) -> Any:
    """A DataFrame answer for a DataFrame question: one row per input, on the input's index; one
    column per class when the model gives probabilities (named by its labels when it has them)."""
    import pandas as pd

    predictions = answer["predictions"]
    first = predictions[0] if predictions else None
    if isinstance(first, list):
        columns = answer.get("classes") or [f"class_{i}" for i in range(len(first))]
        return pd.DataFrame(predictions, columns=[str(c) for c in columns], index=inputs.index)
    if isinstance(first, dict):
        return pd.DataFrame(predictions, index=inputs.index)
    return pd.DataFrame({"prediction": predictions}, index=inputs.index)


def predict(
    project: str, name: str, inputs: Rows, *, client: KosmosClient | None = None, **extra: Any
) -> Any:
    """Predictions for ``inputs`` (rows of field: value, or a DataFrame; entity keys fetch online
    features), from the data plane (Ray Serve's ingress), never through the control plane.

    Rows give the data plane's answer (``predictions``, ``classes`` when the model has labels,
    ``model_version``, ``request_id``); a DataFrame gives a DataFrame, one row per input, with
    ``attrs`` holding the model version and request id.
    """
    with client_or_default(client) as c:
        answer = c.dataplane(f"/{project}/{name}/predict", {"inputs": _rows(inputs), **extra})
    if not hasattr(inputs, "columns"):
        return answer
    frame = _frame(answer, inputs)
    frame.attrs = {k: answer[k] for k in ("model_version", "request_id") if k in answer}
    return frame


def predict_batch(
    project: str,
    name: str,
    inputs: Rows,
    *,
    chunk_rows: int = 10_000,
    progress: bool = True,
    client: KosmosClient | None = None,
) -> Any:
    """Predictions for any number of rows, sent in chunks of ``chunk_rows`` (the data plane takes
    up to 20,000 a call), with a progress bar. Rows give ``{predictions, classes, model_versions,
    rows}``; a DataFrame gives a DataFrame, as :func:`predict` does."""
    rows = _rows(inputs)
    if not 1 <= chunk_rows <= 20_000:
        raise InvalidInput.field("chunk_rows", f"must be between 1 and 20,000, got {chunk_rows}")
    predictions: list[Any] = []
    versions: set[int] = set()
    classes = None
    bar = None
    if progress and len(rows) > chunk_rows:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc=f"{name}: predict", unit="rows")
    try:
        with client_or_default(client) as c:
            for start in range(0, max(len(rows), 1), chunk_rows):
                part = c.dataplane(
                    f"/{project}/{name}/predict/batch", {"inputs": rows[start : start + chunk_rows]}
                )
                predictions += part["predictions"]
                versions |= set(part.get("model_versions", []))
                classes = classes or part.get("classes")
                if bar is not None:
                    bar.update(len(part["predictions"]))
    finally:
        if bar is not None:
            bar.close()
    answer = {"predictions": predictions, "model_versions": sorted(versions), "rows": len(predictions)}
    if classes:
        answer["classes"] = classes
    if not hasattr(inputs, "columns"):
        return answer
    frame = _frame(answer, inputs)
    frame.attrs = {"model_versions": answer["model_versions"]}
    return frame


def explain(project: str, request_id: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """The decision record of ``request_id`` (the X-Request-Id a prediction or LLM call answered
    with), with the lineage of the model version that made it."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/decisions/{request_id}")


def replay(
    project: str, request_id: str, *, against: str | None = "champion", client: KosmosClient | None = None
) -> dict[str, Any]:
    """Recompute a decision from its record alone: the same output?, what ``against`` (an alias or
    version) would decide, and any skew between the online features and the offline store."""
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/decisions/{request_id}/replay", {"against": against})


def replay_window(
    project: str,
    name: str,
    version: str | int,
    *,
    since: str | None = None,
    until: str | None = None,
    limit: int = 20_000,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """What ``version`` would have decided on the deployment's recorded requests between ``since``
    and ``until`` (ISO times with a time zone): agreement overall and per recorded version, kept as
    an MLflow run in ``<project>/decision-replays``."""
    body = {"version": str(version), "since": since, "until": until, "limit": limit}
    with client_or_default(client) as c:
        return c.post(f"{_base(project)}/{name}/replay", body)
