"""The reconciler: makes Ray Serve match the deployment records, and drives rollouts.

Each pass, for every deployment:

1. apply the record when it changed (a new ``generation``): build the Serve
   application and hand it to Serve without waiting; unchanged model versions keep
   running, a traffic change only reconfigures the router;
2. observe Serve and write the status back (pending, deploying, healthy, degraded,
   failed, with the reason); a candidate that fails its health check is rolled
   back, so traffic never stays on it;
3. drive the rollout: give a ready candidate its share, step a canary while its
   error rate and p99 stay inside the SLO (roll back when not), switch blue-green
   when green is healthy, and start a rollout when a followed alias moves.

After a restart the first pass re-applies every record, which repairs drift
(an application deleted behind Kosmos's back comes back). Runs as
``python -m kosmos.deployment.reconciler`` under `kosmos up`; tests call ``run_once``.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from kosmos.deployment import decisions, rollouts
from kosmos.deployment.dataplane import APP, dataplane_target
from kosmos.deployment.model_cache import prefetch
from kosmos.deployment.models import DeploymentRecord
from kosmos.deployment.serving import model_app_name
from kosmos.deployment.spec import Strategy, slo_lost
from kosmos.deployment.targets import CODE_VERSION, build_targets, live_versions
from kosmos.platform import audit, heartbeats
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import AuditEvent, Project
from kosmos.platform.errors import KosmosError
from kosmos.platform.logs import configure_logging
from kosmos.platform.ray_cluster import connect, ray_address
from kosmos.platform.settings import Settings, get_settings

log = logging.getLogger("kosmos.deployment.reconciler")
NAME = "deployment reconciler"
"""How the reconciler signs its heartbeat (what /readyz, `kosmos doctor` and `kosmos up` show)."""
ACTOR = "kosmos-reconciler"
_FAILED = {"DEPLOY_FAILED", "UNHEALTHY"}
RETIRE_AFTER_S = 5.0
PURGE_EVERY_S = 3600.0  # how often a reconciler deletes decision records past their retention
"""A version that lost its traffic keeps running this long, so no in-flight request hits a stopped replica."""


def _replicas_short(overview: Any) -> str | None:
    """'1 of 2 replicas running ...' while Serve replaces lost replicas (a node went), else None."""
    deployment = overview.deployments.get("model")
    if deployment is None or deployment.status in ("HEALTHY", "UPSCALING", "DOWNSCALING"):
        return None
    states = {str(getattr(k, "value", k)): n for k, n in (deployment.replica_states or {}).items()}
    running, total = states.get("RUNNING", 0), sum(states.values())
    if total == 0 or running >= total:
        return None
    return f"{running} of {total} replicas running; Ray Serve is replacing the others"


def _dataplane_running(status: dict[str, Any]) -> bool:
    """A deployment is healthy only once clients can reach it: the data plane runs too."""
    app = status.get(APP)
    return app is not None and app.status == "RUNNING"


def failure_reason(message: str) -> str:
    """The telling line of a Serve failure message: the last ``SomeError: why`` of a traceback."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Refused): ", ln)]
    return (errors[-1] if errors else (lines[0] if lines else message))[:300]


class Reconciler:
    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self._applied: dict[str, int] = {}  # app -> generation this process applied (drift repair)
        self._prefetch: dict[tuple[str, int], tuple[float, list[Any]]] = {}  # (app, version) -> start, refs
        self._retire_at: dict[tuple[str, int], float] = {}
        self._started = False
        self._dataplane_applied = False
        self._purged_at = 0.0

    @property
    def started(self) -> bool:
        """Whether this reconciler has joined Ray and started Serve."""
        return self._started

    def _apply_dataplane(self) -> None:
        """The data plane's ingress (re-applied when it went missing; unchanged settings keep it)."""
        from ray import serve

        try:
            serve.run_many(
                [dataplane_target(self.settings, CODE_VERSION)],
                wait_for_ingress_deployment_creation=False,
                wait_for_applications_running=False,
            )
            self._dataplane_applied = True
        except Exception as exc:
            log.warning("could not apply the data plane: %s", exc)

    def run_once(self) -> None:
        """One pass over every deployment; a failure in one never stops the others."""
        from ray import serve

        if not self._started:
            connect(self.settings)
            dataplane = self.settings.dataplane
            serve.start(
                proxy_location=dataplane.proxy_location,
                http_options={"host": dataplane.host, "port": self.settings.ray.serve_port},
            )
            self._started = True
        with self.database.transaction() as session:
            ids = list(session.scalars(select(DeploymentRecord.id)))
        status = serve.status().applications
        if not self._dataplane_applied or APP not in status:
            self._apply_dataplane()
        for record_id in ids:
            try:
                with self.database.transaction() as session:
                    record = session.get(DeploymentRecord, record_id, with_for_update=True)
                    if record is not None:
                        self._reconcile(session, record, status)
            except Exception as exc:
                log.exception("reconciling deployment %s failed: %s", record_id, exc)
        if time.monotonic() - self._purged_at > PURGE_EVERY_S:
            self._purged_at = time.monotonic()
            try:
                if gone := decisions.purge(self.database):
                    log.info("deleted %d decision records past their retention", gone)
            except Exception as exc:  # the next hour tries again
                log.warning("could not delete expired decision records: %s", exc)

    def _audit(
        self, session: Any, project: str, record: DeploymentRecord, action: str, **details: Any
    ) -> None:
        audit.record(
            session,
            actor=ACTOR,
            action=action,
            object_type="deployment",
            object_name=record.name,
            project=project,
            details=details,
        )

    def _reconcile(self, session: Any, record: DeploymentRecord, status: dict[str, Any]) -> None:
        from ray import serve

        project = session.get(Project, record.project_id).name
        app = rollouts.app_name(project, record.name)
        if record.status == "deleting":
            for name in status:
                if name == app or name.startswith(f"{app}--v"):
                    serve.delete(name, _blocking=False)
            self._applied.pop(app, None)
            session.delete(record)
            return
        self._follow_alias(session, project, record)
        needed = [app] + [model_app_name(app, v) for v in live_versions(record)]
        if self._applied.get(app) != record.generation or any(n not in status for n in needed):
            self._apply(session, project, app, record)
            return  # observe on the next pass, once Serve has the new target
        self._observe(session, project, app, record, status)
        if record.generation != self._applied.get(app):  # a step or rollback: apply it now
            self._apply(session, project, app, record)
        elif status[app].status == "RUNNING":
            self._retire(app, record)

    def _retire(self, app: str, record: DeploymentRecord) -> None:
        """Stop versions that lost their traffic, once the router has surely moved off them."""
        from ray import serve

        retiring = [int(v) for v in (record.details or {}).get("retiring", [])]
        keep = []
        for version in retiring:
            if version in (record.stable_version, record.candidate_version):
                continue
            if time.time() < self._retire_at.get((app, version), 0.0):
                keep.append(version)
                continue
            serve.delete(model_app_name(app, version), _blocking=False)
        if keep != retiring:
            record.details = {**record.details, "retiring": keep}

    def _apply(self, session: Any, project: str, app: str, record: DeploymentRecord) -> None:
        from ray import serve

        missing = self._missing_versions(project, record)
        if record.candidate_version in missing:
            rollouts.rollback(record, f"model version {record.candidate_version} does not exist")
            self._audit(session, project, record, "deployment.auto_rollback", reason="missing version")
        if record.stable_version in missing:
            record.status = "failed"
            record.reason = f"model {record.spec['model']} has no version {record.stable_version}"
            return
        if not self._caches_filled(app, project, record):
            return  # the next pass looks again; Ray's tasks download meanwhile
        for version in (record.details or {}).get("retiring", []):
            self._retire_at.setdefault((app, int(version)), time.time() + RETIRE_AFTER_S)
        try:
            targets = build_targets(record, project, self.settings)
        except (KosmosError, ValueError) as exc:  # e.g. an engine this cluster cannot run
            record.status, record.reason = "failed", str(exc)[:300]
            self._applied[app] = record.generation
            return
        serve.run_many(
            targets,
            wait_for_ingress_deployment_creation=False,
            wait_for_applications_running=False,
        )
        self._applied[app] = record.generation
        record.applied_generation = record.generation
        if record.status in ("pending", "failed"):
            record.status, record.reason = "deploying", "Ray Serve is starting the replicas"

    def _caches_filled(self, app: str, project: str, record: DeploymentRecord) -> bool:
        """Whether every node's cache holds the versions to serve, so their replicas start warm.

        Starts the prefetch on first sight of a version and never waits on it: a pass that
        finds it still running leaves the deployment "deploying" and looks again next pass.
        A failed or overdue prefetch no longer holds replicas back (they fetch for themselves).
        """
        import ray

        waiting = []
        for version in filter(None, [record.stable_version, record.candidate_version]):
            key = (app, version)
            if key not in self._prefetch:
                refs = prefetch(self.settings, project, record.spec["model"], version)
                self._prefetch[key] = (time.monotonic(), refs)
            started, refs = self._prefetch[key]
            if not refs:
                continue
            done, pending = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in done:
                try:
                    ray.get(ref)
                except Exception as exc:  # a node that could not fetch: its replicas will try themselves
                    log.warning("prefetch of %s v%s failed on a node: %s", app, version, exc)
            overdue = time.monotonic() - started > self.settings.deployment.prefetch_wait_seconds
            if pending and not overdue:
                waiting.append(f"v{version} ({len(done)} of {len(refs)} nodes)")
                self._prefetch[key] = (started, refs)
            else:
                self._prefetch[key] = (started, [])
        if waiting and record.status in ("pending", "failed", "deploying"):  # a live one keeps serving
            record.status = "deploying"
            record.reason = f"fetching model {', '.join(waiting)} into the nodes' caches"
        return not waiting

    def _missing_versions(self, project: str, record: DeploymentRecord) -> set[int]:
        from kosmos.deployment.service import resolve

        missing = set()
        for version in filter(None, [record.stable_version, record.candidate_version]):
            try:
                resolve(self.settings, project, record.spec["model"], str(version))
            except KosmosError:
                missing.add(version)
        return missing

    def _observe(
        self, session: Any, project: str, app: str, record: DeploymentRecord, status: dict[str, Any]
    ) -> None:
        def message(overview: Any) -> str:
            deployment = overview.deployments.get("model")
            return failure_reason(
                (deployment.message if deployment else "") or overview.message or overview.status
            )

        router = status[app]
        stable = status[model_app_name(app, record.stable_version)]
        candidate = (
            status[model_app_name(app, record.candidate_version)] if record.candidate_version else None
        )
        if candidate is not None and candidate.status in _FAILED:
            reason = f"v{record.candidate_version} failed its health check: {message(candidate)}"
            rollouts.rollback(record, reason)
            self._audit(session, project, record, "deployment.auto_rollback", reason=reason)
            record.status, record.reason = "degraded", reason
            return
        if stable.status in _FAILED:
            record.status = "degraded" if record.details.get("ever_healthy") else "failed"
            record.reason = f"v{record.stable_version}: {message(stable)}"
        elif router.status in _FAILED:
            record.status, record.reason = "degraded", f"router: {message(router)}"
        elif record.details.get("ever_healthy") and (short := _replicas_short(stable)):
            record.status, record.reason = "degraded", f"v{record.stable_version}: {short}"
        elif stable.status == "RUNNING" and router.status == "RUNNING" and _dataplane_running(status):
            record.status = "healthy"
            record.details = {**record.details, "ever_healthy": True}
            record.reason = "serving " + ", ".join(f"v{v} {w}%" for v, w in record.traffic.items() if w)
            record.reason += _held_back(record)
        else:
            record.status, record.reason = "deploying", "Ray Serve is starting the replicas"
        self._describe_versions(app, record, status)
        if candidate is not None and candidate.status == "RUNNING":
            self._drive(session, project, app, record)

    def _describe_versions(self, app: str, record: DeploymentRecord, status: dict[str, Any]) -> None:
        """Record how each running version loaded (cache cold or warm, times, optimization)."""
        from ray import serve

        known = dict((record.details or {}).get("versions", {}))
        for version in filter(None, [record.stable_version, record.candidate_version]):
            name = model_app_name(app, version)
            if str(version) in known or status[name].status != "RUNNING":
                continue
            try:
                info = (
                    serve.get_deployment_handle("model", app_name=name).describe.remote().result(timeout_s=10)
                )
            except Exception as exc:  # a replica mid-restart: ask again next pass
                log.info("could not describe %s: %s", name, exc)
                continue
            known[str(version)] = {k: v for k, v in info.items() if k != "inputs"}
        if known != (record.details or {}).get("versions", {}):
            record.details = {**record.details, "versions": known}

    def _drive(self, session: Any, project: str, app: str, record: DeploymentRecord) -> None:
        if not record.details.get("candidate_ready"):
            rollouts.candidate_ready(record)
            self._audit(
                session,
                project,
                record,
                "deployment.candidate_ready",
                version=record.candidate_version,
                traffic=record.traffic,
            )
            return
        if record.strategy in (Strategy.blue_green, Strategy.direct):  # switch once it is healthy
            version = rollouts.promote(record)
            self._audit(session, project, record, "deployment.switch", version=version)
        elif record.strategy == Strategy.canary:
            self._judge_canary(session, project, app, record)

    def _judge_canary(self, session: Any, project: str, app: str, record: DeploymentRecord) -> None:
        from ray import serve

        slo = rollouts.spec_of(record).rollout.slo
        since = record.step_started_at.timestamp() if record.step_started_at else 0.0
        stats = serve.get_app_handle(app).stats.remote(since).result(timeout_s=10)
        canary = stats.get(str(record.candidate_version), {"requests": 0})
        record.details = {**record.details, "canary_stats": canary}
        lost = slo_lost(canary.get("errors", 0), canary["requests"], slo.max_error_rate, slo.min_requests)
        breached = lost or (
            canary["requests"] >= slo.min_requests
            and (canary["error_rate"] > slo.max_error_rate or (canary["p99_ms"] or 0) > slo.max_p99_ms)
        )
        if breached:
            reason = (
                f"canary v{record.candidate_version} breached its SLO at step {record.rollout_step}: "
                f"error rate {canary['error_rate']:.1%} (max {slo.max_error_rate:.1%}), "
                f"p99 {canary['p99_ms']:.0f} ms (max {slo.max_p99_ms:.0f} ms)"
            )
            rollouts.rollback(record, reason)
            self._audit(session, project, record, "deployment.auto_rollback", reason=reason, stats=canary)
            record.status, record.reason = "degraded", reason
            return
        step_age = (
            (datetime.now(UTC) - record.step_started_at).total_seconds() if record.step_started_at else 0
        )
        spec = rollouts.spec_of(record)
        if canary["requests"] >= slo.min_requests and step_age >= spec.rollout.step_seconds:
            step = record.rollout_step
            promoted = rollouts.next_step(record)
            action = "deployment.promote" if promoted else "deployment.canary_step"
            self._audit(session, project, record, action, step=step + 1, traffic=record.traffic, stats=canary)

    def _follow_alias(self, session: Any, project: str, record: DeploymentRecord) -> None:
        spec = rollouts.spec_of(record)
        if not spec.follow_alias or spec.version.isdigit() or rollouts.in_rollout(record):
            return
        from kosmos.deployment.service import resolve

        try:
            version = resolve(self.settings, project, spec.model, spec.version)
        except KosmosError:
            return
        if not rollouts.alias_moved(record, version):
            return  # an explicit rollout, promote or rollback, or a failed canary, stands until it moves
        promoted_by = promoted_through_kosmos(session, project, spec.model, spec.version, version)
        if promoted_by is None:  # moved in MLflow directly: nobody to name, so no rollout
            if record.details.get("alias_refused") != version:
                record.details = {**record.details, "alias_refused": version}
                self._audit(
                    session, project, record, "deployment.alias_refused", alias=spec.version, version=version,
                    reason=f"{spec.version} was moved to v{version} outside Kosmos; promote it through "
                    "Kosmos (which records who) to roll it out",
                )  # fmt: skip
            return
        record.details = {k: v for k, v in record.details.items() if k != "alias_refused"}
        rollouts.settle_alias(record, version)
        if version == record.stable_version:
            return  # the alias came to the version already served: nothing to roll out
        rollouts.start(record, version)
        self._audit(
            session, project, record, "deployment.follow_alias", alias=spec.version, version=version,
            promoted_by=promoted_by,
        )  # fmt: skip


def _held_back(record: DeploymentRecord) -> str:
    """Why the deployment does not serve where its alias points, when a rollback keeps it off."""
    spec = rollouts.spec_of(record)
    details = record.details or {}
    rolled = details.get("last_rollback") or {}
    if (
        not spec.follow_alias
        or spec.version.isdigit()
        or rollouts.in_rollout(record)
        or rolled.get("version") != details.get("alias_version")
        or rolled.get("version") == record.stable_version
    ):
        return ""
    return (
        f"; {spec.version} points at v{rolled['version']}, rolled back ({rolled.get('reason', '')[:120]}): "
        f"not rolled out again until {spec.version} moves or someone runs `kosmos deploy rollout`"
    )


def promoted_through_kosmos(session: Any, project: str, model: str, alias: str, version: int) -> str | None:
    """Who pointed ``alias`` of ``model`` at ``version`` through Kosmos, if its latest move did.

    The audit log is the authority: an alias moved in MLflow directly has no ``model.promote``
    event (or a later one names another version), so a deployment never rolls it out.
    """
    events = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.action == "model.promote",
            AuditEvent.project == project,
            AuditEvent.outcome == "success",
            AuditEvent.object_name.like(f"{model}/v%"),
        )
        .order_by(AuditEvent.id.desc())
        .limit(200)
    )
    for event in events:
        if not event.object_name.startswith(f"{model}/v"):  # LIKE's _ matched another model's name
            continue
        if (event.details or {}).get("alias") == alias:
            return event.actor if event.object_name == f"{model}/v{version}" else None
    return None


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    database = Database(settings.database_url)
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()

    reconciler = Reconciler(settings, database)
    log.info("deployment reconciler started")
    while not stop.is_set():
        started = time.monotonic()
        try:
            reconciler.run_once()
            ok, detail = True, f"reconciled every deployment on Ray at {ray_address(settings)}"
        except Exception as exc:
            log.warning("reconciler pass failed (will retry): %s", exc)
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        heartbeats.beat(database, NAME, ok=ok, detail=detail, every_s=settings.deployment.reconcile_seconds)
        for signum in (signal.SIGTERM, signal.SIGINT):  # ray.init installs its own (also below
            signal.signal(signum, on_signal)  # Python's view of it): ours must win, every pass
        stop.wait(max(0.5, settings.deployment.reconcile_seconds - (time.monotonic() - started)))
    if settings.ray.address is None and reconciler.started:
        shutdown_embedded_serve()
    database.dispose()


SERVE_STOP_S = 7.0


def shutdown_embedded_serve() -> None:
    """`kosmos up` is stopping its own Ray: stop Serve first, which stops its HAProxy (a process
    of its own that would outlive the Ray head and keep the data plane's port)."""
    from ray import serve

    def shut() -> None:
        try:
            serve.shutdown()
        except Exception as exc:
            log.warning("could not stop Ray Serve: %s", exc)

    # bounded: Ctrl-C on `kosmos up` returns within seconds (embedded.STOP_BUDGET_S); replicas
    # need no graceful end, the reconciler redeploys every deployment from its record next start
    worker = threading.Thread(target=shut, daemon=True)
    worker.start()
    worker.join(timeout=SERVE_STOP_S)
    if worker.is_alive():
        log.warning("Ray Serve did not stop within %.0f s; its processes go with the Ray head", SERVE_STOP_S)


if __name__ == "__main__":
    main()
