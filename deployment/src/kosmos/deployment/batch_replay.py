"""Batch replay: "what would v4 have decided on last week's traffic?"

    decision records of one deployment in [since, until)  (the decisions table, by index)
        --> their model inputs, as the replicas saw them
        --> one Ray task: the chosen version predicts them all  (user code runs on Ray, never here)
        --> agreement with what was decided, per recorded version  --> an MLflow run in
            ``<project>/decision-replays`` (parameters, metrics, the summary as an artifact)

Only successful predictions are replayed (a failed request decided nothing). Labels are not
part of a decision record, so the summary compares decisions, not accuracy.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from kosmos.deployment import decisions, service
from kosmos.deployment.replay import _run_in_ray, decisions_of, model_inputs
from kosmos.platform.context import CallContext
from kosmos.platform.errors import InvalidInput
from kosmos.platform.settings import Settings

MAX_RECORDS = 20_000


def replay_window(
    ctx: CallContext,
    settings: Settings,
    project: str,
    deployment: str,
    version: str,
    since: datetime | None,
    until: datetime | None,
    limit: int = MAX_RECORDS,
) -> dict[str, Any]:
    """Replay ``deployment``'s recorded predictions in ``[since, until)`` on ``version``."""
    from kosmos.platform.db.models import Role

    ctx.project(project, Role.developer)  # it runs models and writes an MLflow run
    record = service.require_viewer(ctx, project, deployment)
    if since is not None and until is not None and since >= until:
        raise InvalidInput.field("since", "must be before until")
    rows = decisions.window(ctx.session, record.project_id, deployment, since, until, limit=limit)
    done = [r.record for r in rows if r.kind == "model" and r.record.get("output")]
    if not done:
        raise InvalidInput.field("since", f"no recorded predictions of {deployment!r} in that window")
    model = done[0]["model"]
    target = service.resolve(settings, project, model, version)
    inputs: list[dict[str, Any]] = []
    recorded: list[Any] = []
    versions: list[int] = []
    for r in done:
        these = model_inputs(r)
        inputs += these
        recorded += r["output"]["predictions"]
        versions += [int(r["model_version"])] * len(these)
    result = _run_in_ray(settings, project, model, [target], inputs)[target]
    if "error" in result:
        raise InvalidInput.field(
            "version", f"v{target} could not predict the recorded inputs: {result['error']}"
        )
    classes = done[0]["output"].get("classes")
    summary = summarize(recorded, result["predictions"], versions, classes)
    summary |= {
        "deployment": deployment,
        "model": model,
        "version": target,
        "since": min(r["at"] for r in done),
        "until": max(r["at"] for r in done),
        "requests": len(done),
        "truncated": len(rows) >= limit,
    }
    summary["mlflow_run_id"] = _log(settings, project, summary)
    ctx.audit("decision.batch_replay", "deployment", deployment, project=project, details={"version": target})
    return summary


def summarize(
    recorded: list[Any], replayed: list[Any], versions: list[int], classes: list[Any] | None
) -> dict[str, Any]:
    """Agreement of ``replayed`` with ``recorded`` decisions, overall and per recorded version."""
    ours, theirs = decisions_of(recorded, classes), decisions_of(replayed, classes)
    same = np.array([a == b for a, b in zip(ours, theirs, strict=True)])
    per_version = {}
    for v in sorted(set(versions)):
        mask = np.array([x == v for x in versions])
        per_version[str(v)] = {"rows": int(mask.sum()), "agreement": float(same[mask].mean())}
    out: dict[str, Any] = {
        "rows": len(same),
        "agreement": float(same.mean()),
        "changed": int((~same).sum()),
        "by_recorded_version": per_version,
    }
    try:
        a, b = np.asarray(recorded, dtype="float64"), np.asarray(replayed, dtype="float64")
        if a.shape == b.shape:
            out["mean_abs_diff"] = float(np.nanmean(np.abs(a - b)))
    except (TypeError, ValueError):
        pass
    return out


def _log(settings: Settings, project: str, summary: dict[str, Any]) -> str | None:
    """The summary as an MLflow run in ``<project>/decision-replays``."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    name = f"{project}/decision-replays"
    found = client.get_experiment_by_name(name)
    experiment = (
        found.experiment_id if found else client.create_experiment(name, tags={"kosmos.project": project})
    )
    run = client.create_run(
        experiment,
        run_name=f"{summary['deployment']} on v{summary['version']}",
        tags={"kosmos.project": project, "kosmos.deployment": summary["deployment"]},
    )
    run_id = run.info.run_id
    for key in ("deployment", "model", "version", "since", "until", "requests"):
        client.log_param(run_id, key, summary[key])
    for key in ("agreement", "changed", "rows", "mean_abs_diff"):
        if summary.get(key) is not None:
            client.log_metric(run_id, key, summary[key])
    client.log_dict(run_id, summary, "summary.json")
    client.set_terminated(run_id)
    return run_id
