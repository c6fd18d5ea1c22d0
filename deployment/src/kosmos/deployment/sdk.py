"""The deployment SDK: create, roll out and watch deployments (control plane); predict (data plane)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kosmos.platform.client import KosmosClient, client_or_default


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
    """Healthy, no rollout under way, and the reconciler has applied the latest change (a state
    read before it did would still say healthy)."""
    applied = d.get("applied_generation", d.get("generation", 0)) >= d.get("generation", 0)
    return d["status"] == "healthy" and d["candidate_version"] is None and applied


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


def stats(
    project: str, name: str, *, since: float = 0.0, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Requests, errors and latency percentiles per version since ``since`` (a UNIX time)."""
    with client_or_default(client) as c:
        return c.get(f"{_base(project)}/{name}/stats", since=since)


def logs(
    project: str, name: str, *, limit: int = 50, client: KosmosClient | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` entries of the deployment's inference log."""
    with client_or_default(client) as c:
        return c.get(f"{_base(project)}/{name}/logs", limit=limit)


def predict(
    project: str, name: str, inputs: list[dict[str, Any]], *, client: KosmosClient | None = None, **extra: Any
) -> dict[str, Any]:
    """Predictions for ``inputs`` (rows of field: value; entity keys fetch online features),
    from the data plane (Ray Serve's ingress), never through the control plane."""
    with client_or_default(client) as c:
        return c.dataplane(f"/{project}/{name}/predict", {"inputs": inputs, **extra})


def predict_batch(
    project: str, name: str, inputs: list[dict[str, Any]], *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Predictions for many rows at once (one call, no per-row overhead), from the data plane."""
    with client_or_default(client) as c:
        return c.dataplane(f"/{project}/{name}/predict/batch", {"inputs": inputs})
