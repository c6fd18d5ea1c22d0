"""Deployment actions as the REST API, CLI and SDK share them: authorized, audited, transactional."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlflow.tracking import MlflowClient
from sqlalchemy import select

from kosmos.deployment import rollouts
from kosmos.deployment.models import DeploymentRecord
from kosmos.deployment.spec import Autoscaling, DeploymentSpec, Strategy
from kosmos.platform.context import CallContext
from kosmos.platform.db.models import AuditEvent, Project, Role
from kosmos.platform.errors import InvalidInput, KosmosError, NotFound
from kosmos.platform.settings import Settings
from kosmos.training import registry


def resolve(settings: Settings, project: str, model: str, version: str) -> int:
    """A version number or alias of ``model`` as a version number; NotFound names what is missing."""
    client = MlflowClient(settings.mlflow_tracking_uri)
    return int(registry.mlflow_errors(registry.resolve_version)(client, project, model, version).version)


def _alias_version(settings: Settings, project: str, record: DeploymentRecord) -> int | None:
    """Where the deployment's alias points now (None for a pinned version or a missing alias)."""
    spec = rollouts.spec_of(record)
    if spec.version.isdigit():
        return None
    try:
        return resolve(settings, project, spec.model, spec.version)
    except KosmosError:
        return None


def _settle_unrecorded(settings: Settings, project: str, record: DeploymentRecord) -> None:
    """Promote and rollback keep the alias version the rollout started from (a move during the
    canary must still roll out afterwards); only a record from before it was kept gets today's."""
    if "alias_version" not in (record.details or {}):
        rollouts.settle_alias(record, _alias_version(settings, project, record))


def out(record: DeploymentRecord, project: str) -> dict[str, Any]:
    return {
        "name": record.name,
        "project": project,
        "model": record.spec["model"],
        "spec": record.spec,
        "stable_version": record.stable_version,
        "candidate_version": record.candidate_version,
        "strategy": record.strategy,
        "rollout_step": record.rollout_step,
        "traffic": {k: v for k, v in record.traffic.items()},
        "status": record.status,
        "reason": record.reason,
        "details": record.details,
        "generation": record.generation,
        "applied_generation": record.applied_generation,
        "created_by": record.created_by,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat() if record.updated_at else None,
    }


def _get(ctx: CallContext, project: Project, name: str, *, lock: bool = False) -> DeploymentRecord:
    query = select(DeploymentRecord).where(
        DeploymentRecord.project_id == project.id, DeploymentRecord.name == name
    )
    record = ctx.session.scalars(query.with_for_update() if lock else query).one_or_none()
    if record is None or record.status == "deleting":
        raise NotFound(f"deployment {name!r} not found in project {project.name!r}")
    return record


def create(
    ctx: CallContext, settings: Settings, project: str, name: str, spec: DeploymentSpec
) -> dict[str, Any]:
    proj = ctx.project(project, Role.developer)
    version = resolve(settings, project, spec.model, spec.version)
    record = DeploymentRecord(
        project_id=proj.id,
        name=name,
        spec=spec.model_dump(mode="json"),
        stable_version=version,
        strategy="none",
        traffic={str(version): 100},
        rollout_step=0,
        status="pending",
        reason="waiting for the reconciler",
        details={},
        generation=1,
        applied_generation=0,
        created_by=ctx.principal.user_name,
    )
    if not spec.version.isdigit():
        rollouts.settle_alias(record, version)
    ctx.insert(record, f"deployment {name!r} in project {project!r}")
    ctx.audit(
        "deployment.create",
        "deployment",
        name,
        project=project,
        details={"model": spec.model, "version": version},
    )
    return out(record, project)


def list_(ctx: CallContext, project: str) -> list[dict[str, Any]]:
    proj = ctx.project(project, Role.viewer)
    records = ctx.session.scalars(
        select(DeploymentRecord).where(DeploymentRecord.project_id == proj.id).order_by(DeploymentRecord.name)
    )
    shown = [out(r, project) for r in records if r.status != "deleting"]
    rollbacks = _recent_rollbacks(ctx, project)
    return [honest(d, rollbacks.get(d["name"], [])) for d in shown]


def get(ctx: CallContext, project: str, name: str) -> dict[str, Any]:
    shown = out(_get(ctx, ctx.project(project, Role.viewer), name), project)
    return honest(shown, _recent_rollbacks(ctx, project, name).get(name, []))


UNSTABLE_WINDOW = timedelta(minutes=15)
UNSTABLE_ROLLBACKS = 2


def honest(deployment: dict[str, Any], rollbacks: list[str]) -> dict[str, Any]:
    """``deployment`` as shown: ``unstable`` instead of ``healthy`` when its canary was rolled back
    automatically ``UNSTABLE_ROLLBACKS`` times or more in ``UNSTABLE_WINDOW`` (``rollbacks``: their
    reasons, newest first). The stable version serves, but the rollout keeps failing; worse states
    are kept as they are."""
    if deployment["status"] != "healthy" or len(rollbacks) < UNSTABLE_ROLLBACKS:
        return deployment
    minutes = int(UNSTABLE_WINDOW.total_seconds() // 60)
    reason = f"{len(rollbacks)} automatic rollbacks in {minutes} min; last: {rollbacks[0]}"
    return {**deployment, "status": "unstable", "reason": reason}


def _recent_rollbacks(ctx: CallContext, project: str, name: str | None = None) -> dict[str, list[str]]:
    query = select(AuditEvent.object_name, AuditEvent.details).where(
        AuditEvent.project == project,
        AuditEvent.object_type == "deployment",
        AuditEvent.action == "deployment.auto_rollback",
        AuditEvent.at >= datetime.now(UTC) - UNSTABLE_WINDOW,
    )
    if name is not None:
        query = query.where(AuditEvent.object_name == name)
    found: dict[str, list[str]] = {}
    for deployment, details in ctx.session.execute(query.order_by(AuditEvent.id.desc())):
        found.setdefault(deployment, []).append(str((details or {}).get("reason") or "no reason recorded"))
    return found


def rollout(
    ctx: CallContext,
    settings: Settings,
    project: str,
    name: str,
    version: str,
    strategy: Strategy | None,
) -> dict[str, Any]:
    """Start moving ``name`` to another model version (a number or an alias)."""
    proj = ctx.project(project, Role.developer)
    record = _get(ctx, proj, name, lock=True)
    problem = strategy and rollouts.spec_of(record).strategy_problem(strategy)
    if problem:
        raise InvalidInput.field("strategy", problem)
    number = resolve(settings, project, record.spec["model"], version)
    rollouts.start(record, number, strategy)
    rollouts.settle_alias(record, _alias_version(settings, project, record))  # a person chose this
    record.status, record.reason = "deploying", f"rolling out v{number} ({record.strategy})"
    ctx.audit(
        "deployment.rollout",
        "deployment",
        name,
        project=project,
        details={
            "version": number,
            "strategy": (strategy or rollouts.spec_of(record).rollout.strategy).value,
        },
    )
    return out(record, project)


def promote(ctx: CallContext, settings: Settings, project: str, name: str, reason: str) -> dict[str, Any]:
    proj = ctx.project(project, Role.developer)
    record = _get(ctx, proj, name, lock=True)
    previous = record.stable_version
    version = rollouts.promote(record)
    record.status, record.reason = "deploying", f"promoted v{version}: moving all traffic to it"
    _settle_unrecorded(settings, project, record)
    ctx.audit(
        "deployment.promote",
        "deployment",
        name,
        project=project,
        details={"version": version, "previous_version": previous, "reason": reason},
    )
    return out(record, project)


def rollback(ctx: CallContext, settings: Settings, project: str, name: str, reason: str) -> dict[str, Any]:
    proj = ctx.project(project, Role.developer)
    record = _get(ctx, proj, name, lock=True)
    dropped = record.candidate_version or record.stable_version
    serving = rollouts.rollback(record, reason or "manual rollback")
    record.status, record.reason = "deploying", f"rolled back: moving all traffic to v{serving}"
    _settle_unrecorded(settings, project, record)
    ctx.audit(
        "deployment.rollback",
        "deployment",
        name,
        project=project,
        details={"dropped_version": dropped, "serving_version": serving, "reason": reason},
    )
    return out(record, project)


def scale(
    ctx: CallContext,
    project: str,
    name: str,
    *,
    replicas: int | None,
    autoscaling: Autoscaling | None,
) -> dict[str, Any]:
    if (replicas is None) == (autoscaling is None):
        raise InvalidInput.field("replicas", "give either replicas or autoscaling bounds")
    proj = ctx.project(project, Role.developer)
    record = _get(ctx, proj, name, lock=True)
    spec = rollouts.spec_of(record)
    spec = spec.model_copy(update={"replicas": replicas or spec.replicas, "autoscaling": autoscaling})
    record.spec = DeploymentSpec.model_validate(spec.model_dump()).model_dump(mode="json")
    record.generation += 1
    ctx.audit(
        "deployment.scale",
        "deployment",
        name,
        project=project,
        details={"replicas": replicas, "autoscaling": autoscaling.model_dump() if autoscaling else None},
    )
    return out(record, project)


def delete(ctx: CallContext, project: str, name: str) -> None:
    proj = ctx.project(project, Role.maintainer)
    record = _get(ctx, proj, name, lock=True)
    record.status, record.reason = "deleting", "waiting for the reconciler to remove the application"
    record.generation += 1
    ctx.audit("deployment.delete", "deployment", name, project=project)


def require_viewer(ctx: CallContext, project: str, name: str) -> DeploymentRecord:
    return _get(ctx, ctx.project(project, Role.viewer), name)


def events(ctx: CallContext, project: str, name: str, limit: int = 200) -> list[dict[str, Any]]:
    """The deployment's own history, newest first: rollouts, steps, promotions, rollbacks (with
    their reasons and figures), scaling; who did each. For every member (viewer+): the rest of
    the project's audit log stays with its maintainers."""
    require_viewer(ctx, project, name)
    rows = ctx.session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.project == project,
            AuditEvent.object_type == "deployment",
            AuditEvent.object_name == name,
        )
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    fields = ("action", "actor", "outcome", "details")
    return [{"at": e.at.isoformat(), **{f: getattr(e, f) for f in fields}} for e in rows]
