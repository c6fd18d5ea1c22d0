"""State transitions of a deployment record: start a rollout, step it, promote, roll back.

Pure functions over a :class:`DeploymentRecord`; the service layer (user actions) and
the reconciler (automatic steps) both use them, so a manual and an automatic
promotion leave the same state. Each bumps ``generation``: the reconciler applies it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kosmos.deployment.models import DeploymentRecord
from kosmos.deployment.spec import DeploymentSpec, Strategy
from kosmos.platform.errors import Conflict


def spec_of(record: DeploymentRecord) -> DeploymentSpec:
    return DeploymentSpec.model_validate(record.spec)


def app_name(project: str, deployment: str) -> str:
    """The Ray Serve application of a deployment (unique across projects)."""
    return f"kosmos--{project}--{deployment}"


def _changed(record: DeploymentRecord, **details: Any) -> None:
    record.generation += 1
    record.details = {**(record.details or {}), **details}


def _retire(record: DeploymentRecord, version: int) -> list[int]:
    """The retiring list plus ``version``: it keeps running until the router has moved off it."""
    live = {record.stable_version, record.candidate_version}
    return sorted({*(record.details or {}).get("retiring", []), version} - live)


def settle_alias(record: DeploymentRecord, version: int | None) -> None:
    """Record that ``record`` has acted on its alias pointing at ``version`` (followed it, or a person
    chose otherwise): following the alias rolls out only a later move of it, never this one again."""
    if version is not None:
        record.details = {**(record.details or {}), "alias_version": version}


def alias_moved(record: DeploymentRecord, version: int) -> bool:
    """Whether the alias now points elsewhere than when ``record`` last acted on it. Records from
    before this was kept count their stable version as the one they followed."""
    return version != (record.details or {}).get("alias_version", record.stable_version)


def in_rollout(record: DeploymentRecord) -> bool:
    return record.candidate_version is not None


def start(record: DeploymentRecord, version: int, strategy: Strategy | None = None) -> None:
    """Begin moving ``record`` to model ``version`` with ``strategy`` (the spec's by default)."""
    spec = spec_of(record)
    strategy = strategy or spec.rollout.strategy
    if in_rollout(record):
        raise Conflict(
            f"deployment {record.name!r} is already rolling out v{record.candidate_version}; "
            "promote or roll it back first"
        )
    if version == record.stable_version:
        raise Conflict(f"deployment {record.name!r} already serves v{version}")
    stable = record.stable_version
    record.candidate_version = version
    record.strategy = strategy.value
    record.rollout_step = 0
    record.step_started_at = datetime.now(UTC)
    # the candidate takes no traffic until its replicas are healthy (see `candidate_ready`)
    record.traffic = {str(stable): 100, str(version): 0}
    _changed(record, shadow=version if strategy == Strategy.shadow else None, candidate_ready=False)


def planned_traffic(record: DeploymentRecord) -> dict[str, int]:
    """The split the rollout wants once the candidate is ready."""
    spec = spec_of(record)
    stable, candidate = str(record.stable_version), str(record.candidate_version)
    if record.strategy == Strategy.canary:
        share = spec.rollout.steps[record.rollout_step]
        return {stable: 100 - share, candidate: share}
    if record.strategy == Strategy.ab:
        return {stable: 100 - spec.rollout.ab_split, candidate: spec.rollout.ab_split}
    return {stable: 100, candidate: 0}  # shadow, blue-green, direct: all traffic stays on stable


def candidate_ready(record: DeploymentRecord) -> None:
    """The candidate's replicas passed their health check: give it its planned share."""
    record.traffic = planned_traffic(record)
    record.step_started_at = datetime.now(UTC)
    _changed(record, candidate_ready=True)


def next_step(record: DeploymentRecord) -> bool:
    """Advance a canary one step; returns True when that made the candidate the stable version."""
    spec = spec_of(record)
    if record.rollout_step + 1 >= len(spec.rollout.steps):
        promote(record)
        return True
    record.rollout_step += 1
    record.traffic = planned_traffic(record)
    record.step_started_at = datetime.now(UTC)
    _changed(record)
    return False


def promote(record: DeploymentRecord) -> int:
    """The candidate becomes the stable version with all traffic; returns it."""
    if record.candidate_version is None:
        raise Conflict(f"deployment {record.name!r} has no rollout to promote")
    previous, new = record.stable_version, record.candidate_version
    record.stable_version, record.candidate_version = new, None
    record.strategy = "none"
    record.traffic = {str(new): 100}
    record.step_started_at = None
    retiring = _retire(record, previous)
    _changed(record, previous_version=previous, shadow=None, candidate_ready=False, retiring=retiring)
    return new


def rollback(record: DeploymentRecord, reason: str) -> int:
    """Drop the candidate (or, with none, return to the previous version); returns the version serving."""
    if record.candidate_version is not None:
        dropped = record.candidate_version
        record.candidate_version = None
        record.strategy = "none"
        record.traffic = {str(record.stable_version): 100}
        record.step_started_at = None
        rolled = {"version": dropped, "reason": reason, "at": datetime.now(UTC).isoformat()}
        retiring = _retire(record, dropped)
        _changed(record, shadow=None, candidate_ready=False, last_rollback=rolled, retiring=retiring)
        return record.stable_version
    previous = (record.details or {}).get("previous_version")
    if previous is None:
        raise Conflict(f"deployment {record.name!r} has no earlier version to roll back to")
    current = record.stable_version
    record.stable_version = int(previous)
    record.traffic = {str(previous): 100}
    rolled = {"version": current, "reason": reason, "at": datetime.now(UTC).isoformat()}
    _changed(record, previous_version=current, last_rollback=rolled, retiring=_retire(record, current))
    return record.stable_version


def router_config(record: DeploymentRecord) -> dict[str, Any]:
    """The router's ``user_config``: weights, shadow, A/B and decision records (see serving.TrafficRouter)."""
    spec = spec_of(record)
    details = record.details or {}
    ready = bool(details.get("candidate_ready"))
    config: dict[str, Any] = {
        "traffic": record.traffic
        if ready or record.candidate_version is None
        else {str(record.stable_version): 100},
        "shadow": details.get("shadow") if ready else None,
        "stable": record.stable_version,
        "model": spec.model,
        "log_sample_rate": spec.log_sample_rate,
        "retention_days": spec.decision_retention_days,
        "missing_entities": spec.missing_entities,
    }
    if record.strategy == Strategy.canary and ready and record.candidate_version is not None:
        slo = spec.rollout.slo  # the router stops the canary's traffic the moment its SLO is lost
        config["canary"] = {
            "version": record.candidate_version,
            "step": record.rollout_step,
            "max_error_rate": slo.max_error_rate,
            "min_requests": slo.min_requests,
        }
    if record.strategy == Strategy.ab and ready:
        config |= {
            "ab_key": spec.rollout.ab_key,
            "ab_split": spec.rollout.ab_split,
            "ab_version": record.candidate_version,
        }
    return config
