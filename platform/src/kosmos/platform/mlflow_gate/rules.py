"""Which MLflow REST calls a Kosmos user may make, and which project each call touches.

Every call names what it touches (an experiment, a run, a logged model, a trace, an
artifact path, a registered model); the resolver maps each to a project and the caller
needs ``role`` on all of them. A call that matches no rule is refused unless the caller is
a platform administrator or a Kosmos service: the table grows by adding what users need,
never by MLflow adding an endpoint.

Registry writes (registered models, versions, aliases, prompts) are not in the table on
purpose: they go through Kosmos (`kosmos models register` / `promote`, the prompt API),
which checks lineage and audits who did it and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from kosmos.platform.db.models import Role

Kind = Literal["experiment_id", "experiment_name", "run", "logged_model", "trace", "artifact", "model"]


@dataclass(frozen=True)
class Target:
    """One thing a call touches, as the request names it."""

    kind: Kind
    value: str


@dataclass
class Call:
    """An MLflow REST call, parsed once: the path's parameters, the query and the JSON body."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, list[str]] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def arg(self, *names: str) -> str | None:
        """The first of ``names`` found in the body, else in the query."""
        for name in names:
            value = self.body.get(name)
            if value is None and self.query.get(name):
                value = self.query[name][0]
            if value is not None:
                return str(value)
        return None

    def args(self, name: str) -> list[str]:
        """A list argument: the body's list, else every repetition in the query."""
        value = self.body.get(name)
        if isinstance(value, list):
            return [str(v) for v in value]
        return [str(v) for v in self.query.get(name, [])]


Targets = Callable[[Call], Iterable[Target]]
ResponseFilter = tuple[str, Literal["experiment", "model"]]
"""(the response's list key, what each item's ``name`` is): items the caller may not read
are removed from a search's page."""


@dataclass(frozen=True)
class Rule:
    role: Role
    targets: Targets
    filter: ResponseFilter | None = None
    needs_body: bool = True


class Refused(Exception):
    """A call refused for what it asks, not who asks it (a 403 with this message)."""


def _one(kind: Kind, *names: str) -> Targets:
    def targets(call: Call) -> Iterator[Target]:
        value = call.arg(*names)
        if value is None:
            raise Refused(f"{' or '.join(names)} is required")
        yield Target(kind, value)

    return targets


def _many(kind: Kind, name: str) -> Targets:
    def targets(call: Call) -> Iterator[Target]:
        values = call.args(name)
        if not values:
            raise Refused(f"{name} must name at least one of your projects' experiments")
        yield from (Target(kind, v) for v in values)

    return targets


def _path(kind: Kind, param: str) -> Targets:
    return lambda call: [Target(kind, call.params[param])]


def _none(_call: Call) -> Iterable[Target]:
    return ()


def _trace_locations(call: Call) -> Iterator[Target]:
    ids = [
        str(loc["mlflow_experiment"]["experiment_id"])
        for loc in call.body.get("locations") or []
        if isinstance(loc, dict) and isinstance(loc.get("mlflow_experiment"), dict)
    ] or call.args("experiment_ids")
    if not ids:
        raise Refused("locations must name at least one of your projects' experiments")
    yield from (Target("experiment_id", i) for i in ids)


def _started_trace(call: Call) -> Iterator[Target]:
    info = (call.body.get("trace") or {}).get("trace_info") or {}
    location = (info.get("trace_location") or {}).get("mlflow_experiment") or {}
    experiment = location.get("experiment_id")
    if experiment is None:
        raise Refused("trace.trace_info.trace_location.mlflow_experiment.experiment_id is required")
    yield Target("experiment_id", str(experiment))


def _otlp(call: Call) -> Iterator[Target]:
    experiment = call.headers.get("x-mlflow-experiment-id")
    if not experiment:
        raise Refused("the x-mlflow-experiment-id header is required")
    yield Target("experiment_id", experiment)


def _new_logged_model(call: Call) -> Iterator[Target]:
    yield from _one("experiment_id", "experiment_id")(call)
    if run := call.arg("source_run_id"):
        yield Target("run", run)


def _artifact(call: Call) -> Iterator[Target]:
    path = call.params.get("path") or call.arg("path")
    if not path:
        raise Refused("an artifact path under one of your projects' experiments is required")
    yield Target("artifact", path)


def _run_and_model(call: Call) -> Iterator[Target]:
    yield from _one("run", "run_id", "run_uuid")(call)
    if model := call.arg("model_id"):
        yield Target("logged_model", model)


V, D, M = Role.viewer, Role.developer, Role.maintainer
_RUN = _one("run", "run_id", "run_uuid")
_EXPERIMENT = _one("experiment_id", "experiment_id")
_MODEL = _one("model", "name")

_RUN_WRITES = (
    "update", "delete", "restore", "log-metric", "log-parameter", "set-tag", "delete-tag", "log-batch",
    "log-model", "log-inputs",
)  # fmt: skip
_FIXED: dict[tuple[str, str], Rule] = {
    # experiments
    ("GET", "/api/2.0/mlflow/experiments/get"): Rule(V, _EXPERIMENT),
    ("GET", "/api/2.0/mlflow/experiments/get-by-name"): Rule(V, _one("experiment_name", "experiment_name")),
    ("POST", "/api/2.0/mlflow/experiments/create"): Rule(D, _one("experiment_name", "name")),
    ("GET", "/api/2.0/mlflow/experiments/search"): Rule(V, _none, ("experiments", "experiment")),
    ("POST", "/api/2.0/mlflow/experiments/search"): Rule(V, _none, ("experiments", "experiment")),
    ("POST", "/api/2.0/mlflow/experiments/update"): Rule(D, _EXPERIMENT),
    ("POST", "/api/2.0/mlflow/experiments/delete"): Rule(M, _EXPERIMENT),
    ("POST", "/api/2.0/mlflow/experiments/restore"): Rule(M, _EXPERIMENT),
    ("POST", "/api/2.0/mlflow/experiments/set-experiment-tag"): Rule(D, _EXPERIMENT),
    ("POST", "/api/2.0/mlflow/experiments/delete-experiment-tag"): Rule(D, _EXPERIMENT),
    # runs
    ("POST", "/api/2.0/mlflow/runs/create"): Rule(D, _EXPERIMENT),
    ("GET", "/api/2.0/mlflow/runs/get"): Rule(V, _RUN),
    ("POST", "/api/2.0/mlflow/runs/search"): Rule(V, _many("experiment_id", "experiment_ids")),
    **{("POST", f"/api/2.0/mlflow/runs/{op}"): Rule(D, _RUN) for op in _RUN_WRITES},
    ("POST", "/api/2.0/mlflow/runs/outputs"): Rule(D, _run_and_model),
    ("GET", "/api/2.0/mlflow/metrics/get-history"): Rule(V, _RUN),
    ("GET", "/api/2.0/mlflow/metrics/get-history-bulk-interval"): Rule(V, _many("run", "run_ids")),
    ("GET", "/api/2.0/mlflow/artifacts/list"): Rule(V, _RUN),
    ("GET", "/get-artifact"): Rule(V, _RUN),
    # logged models (MLflow 3)
    ("POST", "/api/2.0/mlflow/logged-models"): Rule(D, _new_logged_model),
    ("POST", "/api/2.0/mlflow/logged-models/search"): Rule(V, _many("experiment_id", "experiment_ids")),
    # artifacts, proxied by the server: the path's first segment is the experiment id
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"): Rule(V, _artifact, needs_body=False),
    # traces
    ("POST", "/api/3.0/mlflow/traces"): Rule(D, _started_trace),
    ("POST", "/api/3.0/mlflow/traces/search"): Rule(V, _trace_locations),
    ("GET", "/api/2.0/mlflow/traces"): Rule(V, _many("experiment_id", "experiment_ids")),
    ("GET", "/api/3.0/mlflow/traces/get"): Rule(V, _one("trace", "trace_id")),
    ("POST", "/v1/traces"): Rule(D, _otlp, needs_body=False),
    # the registry: reads only (writes go through Kosmos)
    ("GET", "/api/2.0/mlflow/registered-models/get"): Rule(V, _MODEL),
    ("GET", "/api/2.0/mlflow/registered-models/search"): Rule(V, _none, ("registered_models", "model")),
    ("GET", "/api/2.0/mlflow/registered-models/get-latest-versions"): Rule(V, _MODEL),
    ("POST", "/api/2.0/mlflow/registered-models/get-latest-versions"): Rule(V, _MODEL),
    ("GET", "/api/2.0/mlflow/registered-models/alias"): Rule(V, _MODEL),
    ("GET", "/api/2.0/mlflow/model-versions/get"): Rule(V, _MODEL),
    ("GET", "/api/2.0/mlflow/model-versions/get-download-uri"): Rule(V, _MODEL),
    ("GET", "/api/2.0/mlflow/model-versions/search"): Rule(V, _none, ("model_versions", "model")),
    ("GET", "/model-versions/get-artifact"): Rule(V, _MODEL),
}

_LOGGED_MODEL = r"/api/2\.0/mlflow/logged-models/(?P<id>[^/]+)"
_ARTIFACT = r"/api/2\.0/mlflow-artifacts/artifacts/(?P<path>.+)"
_UPLOAD = r"/api/2\.0/mlflow-artifacts/mpu/(?:create|complete|abort)/(?P<path>.+)"
_TRACE = r"/api/[23]\.0/mlflow/traces/(?P<id>[^/]+)"
_BY_MODEL = _path("logged_model", "id")
_BY_TRACE = _path("trace", "id")
_PATTERNS: list[tuple[str, re.Pattern[str], Rule]] = [
    (method, re.compile(pattern), rule)
    for method, pattern, rule in [
        ("GET", _LOGGED_MODEL, Rule(V, _BY_MODEL)),
        ("PATCH", _LOGGED_MODEL, Rule(D, _BY_MODEL)),
        ("DELETE", _LOGGED_MODEL, Rule(D, _BY_MODEL)),
        ("PATCH", _LOGGED_MODEL + "/tags", Rule(D, _BY_MODEL)),
        ("DELETE", _LOGGED_MODEL + "/tags/[^/]+", Rule(D, _BY_MODEL)),
        ("POST", _LOGGED_MODEL + "/params", Rule(D, _BY_MODEL)),
        ("GET", _LOGGED_MODEL + "/artifacts/directories", Rule(V, _BY_MODEL)),
        ("GET", _ARTIFACT, Rule(V, _artifact, needs_body=False)),
        ("PUT", _ARTIFACT, Rule(D, _artifact, needs_body=False)),
        ("DELETE", _ARTIFACT, Rule(D, _artifact, needs_body=False)),
        ("POST", _UPLOAD, Rule(D, _artifact)),
        ("GET", r"/api/3\.0/mlflow/traces/(?P<id>[^/]+)", Rule(V, _BY_TRACE)),
        ("GET", r"/api/2\.0/mlflow/traces/(?P<id>[^/]+)/info", Rule(V, _BY_TRACE)),
        ("PATCH", _TRACE + "/tags", Rule(D, _BY_TRACE)),
        ("DELETE", _TRACE + "/tags", Rule(D, _BY_TRACE)),
    ]
]

OPEN_PATHS = frozenset({"/health", "/version"})
"""Answered without a token: load balancers and `kosmos doctor` probe them."""

UI_PREFIXES = ("/static-files/",)
"""The MLflow UI's assets: no data in them, served to anyone (the data behind them is not)."""

PROTECTED_TAGS = frozenset({"kosmos.project", "kosmos.team", "kosmos.user", "mlflow.user"})
"""Tags that say whose a run is: set by the gate when a run is created, never by a caller."""


def normalize(path: str) -> str:
    """The UI's ``/ajax-api/...`` routes are the REST API's under another prefix."""
    return "/api/" + path[len("/ajax-api/") :] if path.startswith("/ajax-api/") else path


def rule_for(method: str, path: str) -> tuple[Rule, dict[str, str]] | None:
    """The rule for a call and its path parameters, or None when users may not make it."""
    rule = _FIXED.get((method, path))
    if rule is not None:
        return rule, {}
    for m, pattern, rule in _PATTERNS:
        if m == method and (match := pattern.fullmatch(path)):
            return rule, match.groupdict()
    return None


def project_of_experiment_name(name: str) -> str | None:
    """Kosmos names experiments ``<project>/<name>``; anything else belongs to no project."""
    project, sep, rest = name.partition("/")
    return project if sep and project and rest else None


def project_of_model_name(name: str) -> str | None:
    """Registered models and prompts are ``<project>.<name>`` (project names hold no '.')."""
    project, sep, rest = name.partition(".")
    return project if sep and project and rest else None
