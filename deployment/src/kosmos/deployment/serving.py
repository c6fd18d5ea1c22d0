"""The Ray Serve application behind one deployment: a traffic router and one model server per version.

    TrafficRouter (ingress)  --weights / A-B hash-->  ModelServer "v3"  (stable)
          |  online features from Feast              ModelServer "v4"  (canary, green or B)
          '-- mirrors to the shadow version, compares, never returns its output

Ray Serve has no traffic splitting of its own; the router does it. Its policy
(weights, shadow, A/B key) is the deployment's ``user_config``, so a traffic step
reconfigures the running router in place instead of restarting anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from ray import serve
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from kosmos.deployment.decisions import DecisionRecorder, RecordSource, model_record
from kosmos.deployment.feature_join import BadRows, FeatureJoin, Joined, UnknownEntities
from kosmos.deployment.model_cache import fetch_version
from kosmos.deployment.spec import slo_lost
from kosmos.platform.db.engine import Database
from kosmos.platform.errors import KosmosError
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)
MAX_ROWS = 1000
_NUMERIC = {"double", "float"}
_INTEGER = {"long", "integer"}


def problem(field: str, reason: str) -> dict[str, str]:
    """One thing wrong with a request, as data: the field it is in and why."""
    return {"field": field, "reason": reason}


def check_rows(rows: Any, columns: dict[str, str], model: str) -> list[dict[str, str]]:
    """Every problem with ``rows`` against the signature ``columns`` (name -> MLflow type), by field.

    A null in a number column is a missing value (NaN; a new user has no 7-day statistics yet),
    which a model may take or refuse (see ``ModelServer.predict``). Numbers must be finite:
    JSON's ``1e999`` parses as infinity."""
    if not isinstance(rows, list) or not rows:
        return [problem("inputs", "give a non-empty list of rows, e.g. [{'amount': 12.5, ...}]")]
    if len(rows) > MAX_ROWS:
        return [problem("inputs", f"at most {MAX_ROWS} rows per request, got {len(rows)}")]
    problems: list[dict[str, str]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            problems.append(problem(f"inputs[{i}]", "a row must be an object of field: value"))
            continue
        for name in row.keys() - columns.keys():
            if not name.startswith("_"):
                problems.append(problem(f"inputs[{i}].{name}", f"not an input of {model}"))
        for name, kind in columns.items():
            value = row.get(name)
            if name not in row:
                problems.append(problem(f"inputs[{i}].{name}", f"missing ({kind})"))
            elif value is None:
                if kind not in _NUMERIC:
                    problems.append(problem(f"inputs[{i}].{name}", f"may not be null ({kind})"))
            elif kind in _NUMERIC and (isinstance(value, bool) or not isinstance(value, int | float)):
                problems.append(problem(f"inputs[{i}].{name}", f"must be a number, got {value!r}"))
            elif kind in _NUMERIC and not math.isfinite(value):
                problems.append(problem(f"inputs[{i}].{name}", f"must be a finite number, got {value!r}"))
            elif kind in _INTEGER and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(problem(f"inputs[{i}].{name}", f"must be an integer, got {value!r}"))
            elif kind == "string" and not isinstance(value, str):
                problems.append(problem(f"inputs[{i}].{name}", f"must be a string, got {value!r}"))
            elif kind == "boolean" and not isinstance(value, bool):
                problems.append(problem(f"inputs[{i}].{name}", f"must be true or false, got {value!r}"))
        if len(problems) > 50:
            return [*problems[:50], problem("inputs", "more problems left out")]
    return problems


def input_columns(model: Any) -> dict[str, str]:
    """A loaded pyfunc model's signature inputs: name -> MLflow type name."""
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise ValueError("the model has no signature; register it with one")
    return {c.name: getattr(c.type, "name", str(c.type)) for c in schema.inputs}


def predict_rows(model: Any, columns: dict[str, str], rows: list[dict[str, Any]]) -> list[Any]:
    """``model``'s predictions for checked ``rows``, typed as its signature says (the replica's and
    a replay's one way of turning rows into a frame, so a replay computes what the replica did)."""
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    for name, kind in columns.items():
        if kind in _NUMERIC:
            frame[name] = frame[name].astype("float64" if kind == "double" else "float32")
    return np.asarray(model.predict(frame)).tolist()


def model_app_name(app: str, version: int) -> str:
    """Each model version runs as its own Serve application, so adding or retiring one
    never restarts the router or the other versions."""
    return f"{app}--v{version}"


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256)
class ModelServer:
    """One registered model version, loaded through the node-local model cache."""

    def __init__(
        self,
        settings: dict[str, Any],
        project: str,
        model: str,
        version: int,
        optimization: dict[str, Any] | None = None,
    ) -> None:
        import mlflow.pyfunc

        self.settings = Settings(**settings)
        self.version = version
        self.name = f"{project}.{model}"
        cached = fetch_version(self.settings, project, model, version)
        started = time.perf_counter()
        self.model = mlflow.pyfunc.load_model(str(cached.path))
        if self.model.metadata.get_input_schema() is None:
            raise ValueError(f"{self.name} v{version} has no signature; register it with one")
        self.columns = input_columns(self.model)
        classes = (self.model.metadata.metadata or {}).get("kosmos.classes")
        self.classes = list(classes) if isinstance(classes, list) else None  # predict_proba's columns
        self.info: dict[str, Any] = {
            "version": version,
            "content_hash": cached.content_hash,
            "cache": "warm" if cached.warm else "cold",
            "fetch_seconds": round(cached.seconds, 3),
            "verify_seconds": round(cached.verify_seconds, 3),
            "load_seconds": round(time.perf_counter() - started, 3),
        }
        if optimization:
            from kosmos.deployment.optimize import optimize
            from kosmos.deployment.spec import Optimization

            self.model, self.info["optimization"] = optimize(
                self.model, cached.path, Optimization(**optimization)
            )
        log.info("loaded %s v%s: %s", self.name, version, self.info)

    def reconfigure(self, config: dict[str, Any]) -> None:
        self._predict_batch.set_max_batch_size(int(config.get("max_batch_size", 64)))
        self._predict_batch.set_batch_wait_timeout_s(float(config.get("batch_wait_ms", 2.0)) / 1000)

    def describe(self) -> dict[str, Any]:
        return {**self.info, "inputs": self.columns}

    def _predict_rows(self, rows: list[dict[str, Any]]) -> list[Any]:
        return predict_rows(self.model, self.columns, rows)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.002)
    async def _predict_batch(self, requests: list[list[dict[str, Any]]]) -> list[list[Any] | Exception]:
        try:
            values = self._predict_rows([row for request in requests for row in request])
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
            # one caller's bad rows (a NaN the model refuses) must not fail the others batched with it
            return [self._alone(request) for request in requests]
        out, start = [], 0
        for request in requests:
            out.append(values[start : start + len(request)])
            start += len(request)
        return out

    def _alone(self, rows: list[dict[str, Any]]) -> list[Any] | Exception:
        try:
            return self._predict_rows(rows)
        except Exception as exc:
            return exc

    async def predict(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        model = f"{self.name} v{self.version}"
        problems = check_rows(rows, self.columns, model)
        if problems:
            return {"error": {"type": "invalid_input", "problems": problems}}
        clean = [{k: v for k, v in row.items() if k in self.columns} for row in rows]
        result = await self._predict_batch(clean)
        if isinstance(result, Exception):
            missing = [
                problem(
                    f"inputs[{i}].{name}",
                    f"is null, and {model} does not take missing values ({failure_cause(result)})",
                )
                for i, row in enumerate(clean)
                for name, kind in self.columns.items()
                if kind in _NUMERIC and row.get(name) is None
            ]
            if missing:  # the caller's input, not the model's fault: a 4xx that names the fields
                return {"error": {"type": "invalid_input", "problems": missing[:50]}}
            raise result
        return {"predictions": result, **({"classes": self.classes} if self.classes else {})}


class _Window:
    """Recent outcomes of one version: (time, latency ms, ok)."""

    def __init__(self) -> None:
        self.events: deque[tuple[float, float, bool]] = deque(maxlen=20000)

    def add(self, ms: float, ok: bool, at: float | None = None) -> None:
        self.events.append((at or time.time(), ms, ok))

    def summary(self, since: float) -> dict[str, Any]:
        recent = [e for e in self.events if e[0] >= since]
        if not recent:
            return {"requests": 0, "errors": 0, "error_rate": 0.0, "p50_ms": None, "p99_ms": None}
        return _figures(recent)

    def series(self, since: float, bucket_s: float) -> list[dict[str, Any]]:
        """The same figures per ``bucket_s`` seconds (buckets with no request left out), oldest first."""
        buckets: dict[int, list[tuple[float, float, bool]]] = {}
        for event in self.events:
            if event[0] >= since:
                buckets.setdefault(int(event[0] // bucket_s), []).append(event)
        return [{"at": key * bucket_s, **_figures(buckets[key])} for key in sorted(buckets)]


def _figures(events: list[tuple[float, float, bool]]) -> dict[str, Any]:
    """Requests, errors, error rate and latency percentiles of (time, latency ms, ok) events."""
    latencies = np.array([e[1] for e in events])
    errors = sum(1 for e in events if not e[2])
    return {
        "requests": len(events),
        "errors": errors,
        "error_rate": errors / len(events),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
    }


def window_stats(windows: dict[int, _Window], since: float, bucket_s: float) -> dict[str, Any]:
    """Each version's ``summary`` since ``since``; with ``bucket_s`` > 0, its ``series`` too."""
    out: dict[str, Any] = {}
    for version, window in windows.items():
        out[str(version)] = window.summary(since)
        if bucket_s > 0:
            out[str(version)]["series"] = window.series(since, bucket_s)
    return out


def ab_bucket(deployment: str, key: Any) -> int:
    """A stable bucket 0..99 for an A/B key: the same key always lands on the same version."""
    return int(hashlib.sha256(f"{deployment}:{key}".encode()).hexdigest()[:8], 16) % 100


@serve.deployment(
    ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=1000, graceful_shutdown_timeout_s=5
)
class TrafficRouter:
    """The ingress during a rollout: features, routing, shadowing, per-version statistics and
    decision records."""

    def __init__(
        self,
        settings: dict[str, Any],
        project: str,
        deployment: str,
        feature_service: str | None,
        app: str,
    ) -> None:
        self.settings = Settings(**settings)
        self.project, self.deployment, self.feature_service = project, deployment, feature_service
        self.app = app
        self.models: dict[int, Any] = {}
        self.windows: dict[int, _Window] = {}
        self.shadow_window = _Window()
        self.shadow_diffs: deque[float] = deque(maxlen=20000)
        self.traffic: dict[int, float] = {}
        self.shadow: int | None = None
        self.ab_key: str | None = None
        self.ab_split, self.ab_version, self.sample_rate = 50, None, 1.0
        self.stable: int | None = None
        self.canary: dict[str, Any] | None = None
        self.canary_seen = [0, 0]  # this step's canary requests and errors, counted here
        self.source = RecordSource(project, deployment, "", feature_service, 30)
        self.decisions = DecisionRecorder(Database(self.settings.database_url))
        self._tasks: set[asyncio.Task[None]] = set()
        self._columns: set[str] | None = None
        self._join = (
            FeatureJoin(self.settings, project, feature_service, self._model_columns)
            if feature_service
            else None
        )

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply a traffic policy in place; model versions are separate Serve applications."""
        self.traffic = {int(v): float(w) for v, w in config["traffic"].items() if float(w) > 0}
        wanted = set(self.traffic) | ({int(config["shadow"])} if config.get("shadow") is not None else set())
        self.models = {v: h for v, h in self.models.items() if v in wanted}  # handles are made on first use

        self.shadow = int(config["shadow"]) if config.get("shadow") is not None else None
        self.ab_key = config.get("ab_key")
        self.ab_split = int(config.get("ab_split", 50))
        self.ab_version = int(config["ab_version"]) if config.get("ab_version") is not None else None
        self.sample_rate = float(config.get("log_sample_rate", 1.0))
        self.stable = int(config["stable"]) if config.get("stable") is not None else None
        canary = config.get("canary")
        if canary != self.canary:  # a new step (or none): its count starts again
            self.canary, self.canary_seen = canary, [0, 0]
        self.source = RecordSource(
            self.project,
            self.deployment,
            str(config.get("model", "")),
            self.feature_service,
            int(config.get("retention_days", 30)),
            str(config.get("missing_entities", "reject")),
        )
        if self._join is not None:
            self._join.missing_entities = self.source.missing_entities

    def _model(self, version: int) -> Any:
        handle = self.models.get(version)
        if handle is None:
            handle = serve.get_deployment_handle("model", app_name=model_app_name(self.app, version))
            self.models[version] = handle
        return handle

    def _pick(self, body: dict[str, Any]) -> int:
        if self.ab_key and self.ab_version is not None:
            key = body.get("key")
            if key is None and body.get("inputs"):
                key = body["inputs"][0].get(self.ab_key)
            if key is not None:
                others = [v for v in self.traffic if v != self.ab_version] or [self.ab_version]
                bucket = ab_bucket(self.deployment, key)
                return self.ab_version if bucket < self.ab_split else others[0]
        versions, weights = zip(*self.traffic.items(), strict=True)
        return random.choices(versions, weights)[0]

    async def _model_columns(self) -> set[str]:
        """The stable version's signature inputs (asked once; versions of one model share them)."""
        if self._columns is None:
            info = await self._model(max(self.traffic, key=self.traffic.get)).describe.remote()
            self._columns = set(info["inputs"])
        return self._columns

    def _canary_lost(self, version: int) -> bool:
        canary = self.canary
        if canary is None or version != canary["version"]:
            return False
        requests, errors = self.canary_seen
        return slo_lost(errors, requests, canary["max_error_rate"], canary["min_requests"])

    def _arm(self, version: int) -> str:
        """Which side of the traffic decision ``version`` is on."""
        if self.ab_key and self.ab_version is not None:
            return "b" if version == self.ab_version else "a"
        return "stable" if version == self.stable else "canary"

    async def predict(self, body: dict[str, Any], caller: str | None = None) -> dict[str, Any]:
        at = time.time()
        request_id, rows = request_rows(body)
        if isinstance(rows, dict):
            return rows
        received = [dict(r) for r in rows]
        version = self._pick(body)  # before the feature join drops the entity keys
        if self._canary_lost(version) and self.stable is not None:
            version = self.stable  # its SLO is lost: no more callers reach it before the rollback
        try:
            joined = await self._join(rows) if self._join else Joined()
        except BadRows as exc:
            return invalid_answer(request_id, exc.problems)
        except UnknownEntities as exc:
            return unknown_answer(request_id, exc.problems)
        except (KosmosError, ValueError, TypeError) as exc:
            return invalid_answer(request_id, [problem("features", str(exc))])
        out, ms, ok = await call_version(self._model, version, rows, request_id)
        if ok is not None:
            self.windows.setdefault(version, _Window()).add(ms, ok)
            if self.canary is not None and version == self.canary["version"]:
                self.canary_seen[0] += 1
                self.canary_seen[1] += 0 if ok else 1
        shadow = self.shadow if self.shadow is not None and self.shadow != version else None
        if ok is False or (ok and random.random() < self.sample_rate):
            traffic = {"arm": self._arm(version), "weights": {str(v): w for v, w in self.traffic.items()}}
            self.decisions.add(
                model_record(
                    self.source,
                    request_id=request_id,
                    body=body,
                    caller=caller,
                    received=received,
                    features=joined.provenance(),
                    out=out,
                    latency_ms=ms,
                    traffic=traffic,
                    shadow_version=shadow,
                    at=at,
                    imputed=joined.imputed,
                )
            )
        if not ok:
            return out
        if shadow is not None:
            task = asyncio.create_task(self._mirror(rows, out["predictions"]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return out

    async def _mirror(self, rows: list[dict[str, Any]], primary: list[Any]) -> None:
        started = time.perf_counter()
        try:
            result = await self._model(self.shadow).predict.remote(rows)  # type: ignore[arg-type]
            ok = "error" not in result
        except Exception:
            result, ok = {}, False
        self.shadow_window.add((time.perf_counter() - started) * 1000, ok)
        if ok:
            a = np.asarray(primary, dtype="float64").ravel()
            b = np.asarray(result["predictions"], dtype="float64").ravel()
            if a.shape == b.shape:
                self.shadow_diffs.append(float(np.abs(a - b).mean()))

    def record(self, outcomes: list[tuple[float, int, float, bool]]) -> None:
        """Outcomes the data-plane ingress served straight from a version's replica, in a batch:
        (time, version, latency ms, ok)."""
        for at, version, ms, ok in outcomes:
            self.windows.setdefault(int(version), _Window()).add(ms, ok, at)

    def __del__(self) -> None:  # Serve calls it on a graceful shutdown: the queued records are written
        self.decisions.close()

    def stats(self, since: float = 0.0, bucket_s: float = 0.0) -> dict[str, Any]:
        """Per-version request counts, error rate and latency since ``since`` (epoch seconds); with
        ``bucket_s``, also per bucket of that many seconds (``series``), for charts over time."""
        out = window_stats(self.windows, since, bucket_s)
        out["policy"] = {  # what this router does now (the record says what it should do)
            "traffic": {str(v): w for v, w in self.traffic.items()},
            "shadow": self.shadow,
            "ab_key": self.ab_key if self.ab_version is not None else None,
            "ab_version": self.ab_version,
        }
        if self.shadow is not None:
            diffs = list(self.shadow_diffs)
            out["shadow"] = {
                "version": self.shadow,
                **self.shadow_window.summary(since),
                "mean_abs_diff": float(np.mean(diffs)) if diffs else None,
            }
        return out


async def call_version(
    model: Callable[[int], Any], version: int, rows: list[dict[str, Any]], request_id: str
) -> tuple[dict[str, Any], float, bool | None]:
    """Predict ``rows`` on ``version`` (``model(version)`` gives its handle): the answer, the
    latency in ms, and whether it counts as a success, a failure, or (None) the caller's fault."""
    started = time.perf_counter()
    try:
        try:
            result = await model(version).predict.remote(rows)
        except (RayActorError, ActorDiedError, ActorUnavailableError):
            # a replica died mid-request: predictions are idempotent, so try another once
            result = await model(version).predict.remote(rows)
    except Exception as exc:
        cause = failure_cause(exc)
        log.warning("version %s failed request %s: %s", version, request_id, cause)
        error = {"type": "model_error", "message": f"model version {version} failed: {cause}"}
        return {"error": error, "model_version": version, "request_id": request_id}, _ms(started), False
    ms = _ms(started)
    if "error" in result:
        return {**result, "model_version": version, "request_id": request_id}, ms, None
    return (
        {
            "predictions": result["predictions"],
            **({"classes": result["classes"]} if result.get("classes") else {}),
            "model_version": version,
            "request_id": request_id,
        },
        ms,
        True,
    )


def failure_cause(exc: BaseException) -> str:
    """What failed, for the caller and the deployment's log: the model's own exception type and
    message (Ray wraps it; its traceback stays in the replica's log), cut to 300 characters."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError.cause: the exception the model raised
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    text = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
    return text[:300]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def request_rows(
    body: Any, default_id: str | None = None
) -> tuple[str, list[dict[str, Any]] | dict[str, Any]]:
    """The request id (the body's, else ``default_id``: the X-Request-Id answered with) and a copy
    of the rows of a predict body, or the invalid-input answer."""
    given = body.get("request_id") if isinstance(body, dict) else None
    request_id = str(given or default_id or uuid.uuid4().hex)
    rows = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return request_id, invalid_answer(request_id, [problem("inputs", "give a non-empty list of objects")])
    if len(rows) > MAX_ROWS:
        return request_id, invalid_answer(
            request_id, [problem("inputs", f"at most {MAX_ROWS} rows per request, got {len(rows)}")]
        )
    return request_id, [dict(r) for r in rows]


def invalid_answer(request_id: str, problems: list[dict[str, str]]) -> dict[str, Any]:
    return {"error": {"type": "invalid_input", "problems": problems}, "request_id": request_id}


def unknown_answer(request_id: str, problems: list[dict[str, Any]]) -> dict[str, Any]:
    """Entities with no online features, refused (``missing_entities: reject``): a 404."""
    return {"error": {"type": "unknown_entity", "problems": problems}, "request_id": request_id}
