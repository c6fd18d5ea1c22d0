"""The data plane: one Ray Serve ingress application in front of every deployment (port 8000).

    client --HTTP--> Serve proxy (every node) --> DataPlane replica
       |  token + project role: 2 s cache, the metadata database only on a miss
       |  /{project}/{deployment}/predict:
       |      one version serving  --> that version's ModelServer          (one hop)
       |      a rollout under way  --> the deployment's TrafficRouter      (weights, shadow, A/B)
       |  /{project}/features/online, /{project}/openai/v1/...  (declared by other plugins)
       '--> outcomes of direct calls go to the router in batches, once a second (its per-version
            statistics stay whole), and decision records to the metadata database
            (``decisions.DecisionRecorder``), never on the request's path

The control plane is never in the path of a prediction or a token. Which deployment lives
where is read from the deployment records by one query a second (``RoutingTable``), so a
promotion or rollback reaches the data plane within ``dataplane.routing_refresh_seconds``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ray import serve
from sqlalchemy import select

from kosmos.deployment import rollouts
from kosmos.deployment.decisions import DecisionRecorder, RecordSource
from kosmos.deployment.models import DeploymentRecord
from kosmos.deployment.serving import model_app_name
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Project
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)
APP = "kosmos-dataplane"
"""The data plane's Serve application (route prefix ``/``); one dash, so no deployment's app name."""
_SERVING = ("healthy", "degraded")


@dataclass(frozen=True)
class Route:
    """Where one deployment's requests go."""

    project: str
    name: str
    app: str
    kind: str
    """``model`` or ``llm``."""
    direct_version: int | None
    """The one version serving, called without the router; None during a rollout."""
    feature_service: str | None
    log_sample_rate: float
    """Share of successful requests that get a decision record."""
    model: str = ""
    retention_days: int = 30
    missing_entities: str = "reject"

    @property
    def source(self) -> RecordSource:
        return RecordSource(
            self.project,
            self.name,
            self.model,
            self.feature_service,
            self.retention_days,
            self.missing_entities,
        )


def route_of(record: DeploymentRecord, project: str) -> Route:
    spec = record.spec or {}
    # With no candidate the router's policy is the stable version at 100%, so the data plane can
    # skip it; also while Serve redeploys the router ("deploying"), when its policy may lag the record.
    settled = record.status in _SERVING or (
        record.status == "deploying" and bool((record.details or {}).get("ever_healthy"))
    )
    direct = record.candidate_version is None and settled
    return Route(
        project=project,
        name=record.name,
        app=rollouts.app_name(project, record.name),
        kind="llm" if spec.get("llm") is not None else "model",
        direct_version=record.stable_version if direct else None,
        feature_service=spec.get("feature_service"),
        log_sample_rate=float(spec.get("log_sample_rate", 1.0)),
        model=str(spec.get("model", "")),
        retention_days=int(spec.get("decision_retention_days", 30)),
        missing_entities=str(spec.get("missing_entities", "reject")),
    )


class RoutingTable:
    """Every deployment's route, re-read from the records in a background thread."""

    def __init__(self, database: Database, refresh_s: float) -> None:
        self.database = database
        self.refresh_s = refresh_s
        self.routes: dict[tuple[str, str], Route] = {}
        self.read_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        with self.database.transaction() as session:
            rows = session.execute(
                select(DeploymentRecord, Project.name).join(
                    Project, Project.id == DeploymentRecord.project_id
                )
            ).all()
            routes = {
                (project, record.name): route_of(record, project)
                for record, project in rows
                if record.status != "deleting"
            }
        self.routes, self.read_at = routes, time.monotonic()

    def get(self, project: str, name: str) -> Route | None:
        return self.routes.get((project, name))

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="kosmos-routing", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception as exc:  # keep the last table; the next pass tries again
                log.warning("could not re-read the deployment records: %s", exc)

    def stop(self) -> None:
        self._stop.set()


class OutcomeRecorder:
    """Outcomes of direct calls, handed to each deployment's router in one call a second."""

    def __init__(self, flush_s: float = 1.0) -> None:
        self.flush_s = flush_s
        self._outcomes: dict[str, list[tuple[float, int, float, bool]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kosmos-outcomes", daemon=True)
        self._thread.start()

    def add(self, app: str, version: int, ms: float, ok: bool) -> None:
        with self._lock:
            self._outcomes.setdefault(app, []).append((time.time(), version, ms, ok))

    def flush(self, wait: bool = False) -> None:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, {}
        for app, batch in outcomes.items():
            try:
                response = serve.get_app_handle(app).record.remote(batch)
                if wait:
                    response.result(timeout_s=10)
            except Exception as exc:  # the router is gone (deleted) or restarting
                log.info("could not hand %s its outcomes: %s", app, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_s):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush(wait=True)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=2000,
    graceful_shutdown_timeout_s=10,
    health_check_period_s=5,
)
@serve.ingress()
class DataPlane:
    """The ingress replica: the platform's data-plane app with a routing table and handles."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings(**settings)
        self.database = Database(self.settings.database_url)
        self.routes = RoutingTable(self.database, self.settings.dataplane.routing_refresh_seconds)
        self.routes.start()
        self.recorder = OutcomeRecorder()
        self.decisions = DecisionRecorder(self.database)

    def __serve_build_asgi_app__(self) -> Any:
        from kosmos.platform.api.dataplane import create_dataplane_app

        app = create_dataplane_app(self.settings, self.database)
        app.state.routes = self.routes
        app.state.recorder = self.recorder
        app.state.decisions = self.decisions
        app.state.handles = Handles()
        return app

    def check_health(self) -> None:
        if time.monotonic() - self.routes.read_at > max(30.0, 10 * self.routes.refresh_s):
            raise RuntimeError("the deployment records have not been readable for 30 s")

    def __del__(self) -> None:  # Serve calls it on a graceful shutdown: nothing recorded is lost
        self.routes.stop()
        self.recorder.close()
        self.decisions.close()


class Handles:
    """Serve handles by application, made on first use and kept."""

    def __init__(self) -> None:
        self._handles: dict[tuple[str, int | None], Any] = {}

    def model(self, app: str, version: int) -> Any:
        key = (app, version)
        if key not in self._handles:
            self._handles[key] = serve.get_deployment_handle("model", app_name=model_app_name(app, version))
        return self._handles[key]

    def router(self, app: str) -> Any:
        key = (app, None)
        if key not in self._handles:
            self._handles[key] = serve.get_app_handle(app)
        return self._handles[key]

    def forget(self, app: str) -> None:
        self._handles = {k: h for k, h in self._handles.items() if k[0] != app}


def settings_version(settings: Settings) -> str:
    """The ingress restarts when (and only when) the settings it was built with change."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:12]


def dataplane_target(settings: Settings, code_version: str) -> Any:
    """The data plane's Serve application, ready for ``serve.run_many``."""
    from ray.serve.api import RunTarget

    deployment = DataPlane.options(
        num_replicas=settings.dataplane.replicas,
        logging_config={"enable_access_log": settings.dataplane.access_log},
    )
    deployment._version = f"{code_version}-{settings_version(settings)}"  # see targets.pinned
    return RunTarget(deployment.bind(settings.model_dump(mode="json")), name=APP, route_prefix="/")
