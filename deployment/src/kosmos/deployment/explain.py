"""``kosmos explain``: one request's decision record, with the lineage of the model version that made it.

    request id --(the caller's project only)--> decision record(s)  (decisions table)
        --> model version -> run -> git commit -> dataset version -> feature views  (MLflow, DVC)

A request id unknown in the project and another project's request id are the same 404.
Reading a record is audited (``decision.explain``): records hold what callers sent.
"""

from __future__ import annotations

from typing import Any

from kosmos.deployment import decisions
from kosmos.deployment.models import DecisionRow
from kosmos.platform.context import CallContext
from kosmos.platform.db.models import Role
from kosmos.platform.errors import KosmosError, NotFound
from kosmos.platform.settings import Settings


def records(ctx: CallContext, project: str, request_id: str) -> list[DecisionRow]:
    """The request's rows in ``project`` (viewer or above), by part; NotFound when there are none."""
    project_id = ctx.project(project, Role.viewer).id
    rows = decisions.find(ctx.session, project_id, request_id)
    if not rows:
        raise NotFound(f"no decision record for request {request_id!r} in project {project!r}")
    return rows


def merged(rows: list[DecisionRow]) -> dict[str, Any]:
    """One record for the whole request: a batch request's parts joined row after row."""
    record = dict(rows[0].record)
    if len(rows) == 1 or record.get("kind") != "model":
        return record
    record["parts"] = len(rows)
    record["input"] = [r for row in rows for r in row.record.get("input") or []]
    record["model_versions"] = sorted({row.model_version for row in rows if row.model_version is not None})
    features: dict[str, dict[str, Any]] = {}
    for row in rows:
        for column, item in (row.record.get("features") or {}).items():
            into = features.setdefault(
                column, {"view": item.get("view"), "values": [], "event_timestamps": []}
            )
            into["values"] += item.get("values") or []
            into["event_timestamps"] += item.get("event_timestamps") or [None] * len(item.get("values") or [])
    record["features"] = features
    outputs = [row.record.get("output") for row in rows]
    if all(outputs):
        record["output"] = {
            "predictions": [p for o in outputs for p in o["predictions"]],
            "classes": outputs[0].get("classes"),
        }
    else:
        record["output"], record["status"] = None, "error"
        record["error"] = "; ".join(r.record["error"] for r in rows if r.record.get("error"))
    return record


def explain(ctx: CallContext, settings: Settings, project: str, request_id: str) -> dict[str, Any]:
    """The decision record of ``request_id`` and, for a model's prediction, its version's lineage."""
    record = merged(records(ctx, project, request_id))
    ctx.audit("decision.explain", "decision", request_id, project=project)
    lineage: dict[str, Any] | None = None
    missing: str | None = None
    if record.get("kind") == "model" and record.get("model") and record.get("model_version"):
        from kosmos.training.registry import lineage as version_lineage

        try:
            lineage = version_lineage(settings, project, record["model"], str(record["model_version"]))
        except NotFound:
            missing = f"model {record['model']!r} version {record['model_version']} is no longer registered"
        except KosmosError as exc:  # MLflow down: the record itself still answers
            missing = f"the lineage could not be read: {exc}"
    links = _links(settings, project, lineage)
    return {"record": record, "lineage": lineage, "links": links, "missing": missing}


def _links(settings: Settings, project: str, lineage: dict[str, Any] | None) -> dict[str, str]:
    """Where to look further, in the MLflow UI (the tracking server's address)."""
    if not lineage:
        return {}
    base = settings.mlflow_tracking_uri.rstrip("/")
    if not base.startswith("http"):
        return {}
    run = lineage["run"]
    links = {"run": f"{base}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"}
    from kosmos.training.registry import model_name

    registered = model_name(project, lineage["model"]["name"])
    links["model_version"] = f"{base}/#/models/{registered}/versions/{lineage['model']['version']}"
    return links
