"""``kosmos.deployments`` in a notebook: the deployment SDK on the session's project, and a
``wait`` that shows progress and can be interrupted without touching the deployment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kosmos.deployment import sdk
from kosmos.platform.fluent import Namespace, Record, current, project_or_session


def wait(
    name: str,
    until: Callable[[dict[str, Any]], bool] | None = None,
    *,
    timeout_s: float = 600.0,
    project: str | None = None,
) -> Record:
    """Wait until deployment ``name`` is healthy with no rollout running (or ``until`` holds), with
    a progress bar of its status and traffic. Ctrl-C (or the notebook's stop button) stops
    waiting only: the rollout goes on, and ``kosmos.deployments.status(name)`` shows it."""
    from tqdm.auto import tqdm

    bar = tqdm(total=None, desc=f"{name}: waiting", bar_format="{desc} [{elapsed}]")

    def show(d: dict[str, Any]) -> None:
        traffic = ", ".join(f"v{v} {w}%" for v, w in d["traffic"].items())
        bar.set_description_str(f"{name}: {d['status']} [{traffic}] {d['reason']}"[:160])

    try:
        result = sdk.wait(
            project_or_session(project),
            name,
            until,
            timeout_s=timeout_s,
            on_change=show,
            client=current().client,
        )
    except KeyboardInterrupt:
        bar.write(f"stopped waiting; {name!r} carries on: kosmos.deployments.status({name!r})")
        return Record(sdk.status(project_or_session(project), name, client=current().client))
    finally:
        bar.close()
    return Record(result)


deployments = Namespace(
    "deployments",
    "Model deployments on Ray Serve: create, roll out, promote, roll back, predict.",
    create=sdk.create,
    list=sdk.list_deployments,
    status=sdk.status,
    wait=wait,
    rollout=sdk.rollout,
    promote=sdk.promote,
    rollback=sdk.rollback,
    scale=sdk.scale,
    delete=sdk.delete,
    stats=sdk.stats,
    replay=sdk.replay_window,
    logs=sdk.logs,
    events=sdk.events,
    predict=sdk.predict,
    predict_batch=sdk.predict_batch,
)


decisions = Namespace(
    "decisions",
    "Decision records: why a request was answered as it was (get), and the same decision recomputed "
    "(replay).",
    get=sdk.explain,
    replay=sdk.replay,
)
