"""The LLM gateway: what happens to an OpenAI-API call before and after the model answers.

    limits -> prompt from the MLflow registry -> PII redaction -> semantic cache lookup
    -> route (with fallback) -> cache store -> usage, quota and an MLflow trace

The HTTP side lives in ``api.py``; this module holds the decisions, so they can be
tested and reused by the SDK. Nothing here sees an unredacted prompt after ``prepare``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from kosmos.deployment.decisions import DecisionRecorder
from kosmos.deployment.models import DeploymentRecord
from kosmos.genai.limits import ProjectLimits, limiter
from kosmos.genai.models_db import GatewayPolicy
from kosmos.genai.prompts import PromptRegistry, Resolved
from kosmos.genai.semantic_cache import Lookup, Namespace, Partition, SemanticCache
from kosmos.genai.usage import UsageRecorder
from kosmos.genai.vector_index import IndexUnavailable
from kosmos.platform import pii
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)
CACHE_HEADER = "X-Kosmos-Cache"
CACHE_MODES = ("skip", "refresh", "sampled")
MAX_PROMPT_CHARS = 200_000
PARTITIONING = (
    "max_tokens", "max_completion_tokens", "stop", "seed", "top_p", "frequency_penalty", "presence_penalty",
)  # fmt: skip
"""Generation settings that partition the cache (with the temperature): another answer may differ."""


class CachePolicy(BaseModel):
    """A project's cache overrides; unset fields take the platform's ``gateway.cache`` settings."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = Field(None, description="Use the semantic cache at all.")
    threshold: float | None = Field(None, gt=0, le=1, description="Similarity for new namespaces.")
    guard: bool | None = Field(None, description="Run the false-hit guard on candidates.")
    ttl_seconds: int | None = Field(None, ge=1, description="How long an answer stays cached.")
    max_entries: int | None = Field(None, ge=1, description="Entries per namespace before eviction.")
    cache_sampled: bool | None = Field(None, description="Also cache temperature > 0 requests.")
    max_false_hit_rate: float | None = Field(
        None, gt=0, lt=1, description="The false-hit rate the project accepts (its error bound)."
    )
    audit_rate: float | None = Field(
        None, ge=0, le=1, description="Share of would-be hits answered by the model and compared."
    )


class Policy(BaseModel):
    """A project's gateway policy: limits, routes by model name, cache behaviour."""

    model_config = ConfigDict(extra="forbid")
    requests_per_minute: int | None = Field(None, ge=1, description="Requests per minute for the project.")
    tokens_per_day: int | None = Field(None, ge=1, description="Prompt + completion tokens per day.")
    routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Model name -> LLM deployments to try in order; the later ones are fallbacks.",
    )
    cache: CachePolicy = Field(default_factory=CachePolicy)


@dataclass
class Effective:
    requests_per_minute: int
    tokens_per_day: int
    routes: dict[str, list[str]]
    cache: dict[str, Any]


class GatewayError(Exception):
    """An answer in OpenAI's error shape (status, message, type, code, param, headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type_, code, param
        self.headers = headers or {}


class GatewayOptions(BaseModel):
    """The ``kosmos`` object an OpenAI client may add to a request (``extra_body={"kosmos": ...}``)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str | None = Field(
        None, description="A registered prompt: prompts:/name@alias or prompts:/name/3."
    )
    variables: dict[str, str | int | float] = Field(
        default_factory=dict, description="The prompt's variables."
    )


@dataclass
class Route:
    name: str
    status: str
    reason: str
    version: str
    engine: dict[str, Any] = field(default_factory=dict)
    """The deployment's engine spec (``llm``), for decision records."""
    retention_days: int = 30


@dataclass
class Prepared:
    """A call ready to be answered: from the cache, or by the first route that can."""

    project_id: int
    model: str
    routes: list[Route]
    body: dict[str, Any]
    kind: str
    effective: Effective
    prompt: Resolved | None = None
    redacted: dict[str, int] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    """The prompt's variables as rendered (redacted)."""
    cache: str | None = None
    """hit, miss, refresh, skip, bypass or error; None when the cache is off."""
    audit: bool = False
    """A hit drawn for an audit: after serving it, the model answers too and the two are compared."""
    namespace: Namespace | None = None
    query: str | None = None
    vector: np.ndarray | None = None
    lookup: Lookup | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def prompt_label(self) -> str | None:
        return f"{self.prompt.name}/{self.prompt.version}" if self.prompt else None


class Gateway:
    """One per control-plane process: limits, prompts, cache and tracing, shared by every request."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings, self.database = settings, database
        self.limits = ProjectLimits(limiter(settings))
        self.cache = SemanticCache(
            database, settings.gateway.cache, cache_dir=settings.home / "model-cache" / "embeddings"
        )
        self._load_verifier()
        self.prompts = PromptRegistry(settings.mlflow_tracking_uri)
        self.recorder = UsageRecorder(database, settings.gateway.usage_flush_seconds)
        self.decisions = DecisionRecorder(database, settings.gateway.usage_flush_seconds)
        self._policies: dict[int, tuple[float, Effective]] = {}
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()

    def _load_verifier(self) -> None:
        """The configured cache verifier. Missing, every lookup is a miss (never a 500): in the
        production profile ``kosmos up`` has already refused to start on it (genai's bootstrap),
        so this only happens when the alias goes away while the platform runs."""
        config = self.settings.gateway.cache
        if not config.verifier:
            return
        from kosmos.genai.verifier import Verifier, VerifierMissing

        try:
            self.cache.verifier = Verifier.load(
                self.settings.mlflow_tracking_uri, config.verifier, config.verifier_min_probability
            )
        except VerifierMissing as exc:
            log.error("%s; every cache lookup is a miss until it is registered", exc)
            self.cache.verifier_error = str(exc)

    # -- policy ---------------------------------------------------------------------
    def stored_policy(self, project_id: int) -> Policy:
        with self.database.transaction() as session:
            row = session.get(GatewayPolicy, project_id)
            return Policy(**row.policy) if row else Policy()

    def save_policy(self, session: Any, project_id: int, policy: Policy) -> None:
        row = session.get(GatewayPolicy, project_id)
        data = policy.model_dump(mode="json", exclude_none=True)
        if row is None:
            session.add(GatewayPolicy(project_id=project_id, policy=data))
        else:
            row.policy = data
        self._policies.pop(project_id, None)

    def effective(self, project_id: int) -> Effective:
        """The project's policy over the platform defaults (re-read every 5 s)."""
        cached = self._policies.get(project_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        stored = self.stored_policy(project_id)
        defaults = self.settings.gateway
        cache = defaults.cache.model_dump()
        cache.update(stored.cache.model_dump(exclude_none=True))
        value = Effective(
            requests_per_minute=stored.requests_per_minute or defaults.requests_per_minute,
            tokens_per_day=stored.tokens_per_day or defaults.tokens_per_day,
            routes=stored.routes,
            cache=cache,
        )
        self._policies[project_id] = (time.monotonic() + 5, value)
        return value

    # -- before the model -----------------------------------------------------------
    def routes(self, session: Any, project_id: int, model: str, effective: Effective) -> list[Route]:
        """The LLM deployments to try for ``model``, in order (only those are read on this hot path)."""

        def llm_records(*conditions: Any) -> dict[str, DeploymentRecord]:
            query = select(DeploymentRecord).where(DeploymentRecord.project_id == project_id, *conditions)
            return {r.name: r for r in session.scalars(query) if (r.spec or {}).get("llm") is not None}

        names = effective.routes.get(model) or [model]
        records = llm_records(DeploymentRecord.name.in_(names))
        routes = [
            Route(
                n,
                records[n].status,
                records[n].reason or "",
                _serving_version(records[n]),
                dict(records[n].spec.get("llm") or {}),
                int(records[n].spec.get("decision_retention_days", 30)),
            )
            for n in names
            if n in records
        ]
        if not routes:
            known = sorted(set(llm_records()) | set(effective.routes))
            raise GatewayError(
                404,
                f"the model {model!r} does not exist in this project; models: {', '.join(known) or 'none'}",
                code="model_not_found",
                param="model",
            )
        return routes

    def prepare(
        self,
        project: str,
        project_id: int,
        routes: list[Route],
        body: dict[str, Any],
        request: Any,
        kind: str,
        cache_header: str | None,
        user: str,
    ) -> Prepared:
        """Limits, prompt, redaction and the cache lookup for one call (blocking: run it in a thread)."""
        effective = self.effective(project_id)
        refusal = self.limits.admit(project_id, effective.requests_per_minute, effective.tokens_per_day)
        if refusal:
            raise GatewayError(
                429, refusal.message, "rate_limit_exceeded", "rate_limit_exceeded",
                headers={"Retry-After": str(refusal.retry_after)},
            )  # fmt: skip
        options = _options(body)
        out = {k: v for k, v in body.items() if k != "kosmos"}
        prepared = Prepared(project_id, request.model, routes, out, kind, effective)
        if options.prompt:
            prepared.prompt = self._resolve(project, options, request.user or user)
        self._apply_prompt_and_redact(prepared, options)
        self._lookup(prepared, request, cache_header)
        return prepared

    def _resolve(self, project: str, options: GatewayOptions, sticky: str) -> Resolved:
        from kosmos.platform.errors import NotFound

        try:
            return self.prompts.resolve(project, options.prompt or "", sticky)
        except NotFound as exc:
            raise GatewayError(404, exc.message, code="prompt_not_found", param="kosmos.prompt") from None

    def _apply_prompt_and_redact(self, prepared: Prepared, options: GatewayOptions) -> None:
        from kosmos.platform.errors import InvalidInput

        body, counts = prepared.body, Counter[str]()
        received = len(json.dumps(body.get("messages") or body.get("prompt"))) + sum(
            len(str(v)) for v in options.variables.values()
        )
        if received > MAX_PROMPT_CHARS:  # before redaction: its cost grows with the text
            raise GatewayError(
                400, f"the prompt is {received} characters; the gateway takes at most {MAX_PROMPT_CHARS}",
                code="context_length_exceeded", param="messages",
            )  # fmt: skip

        def clean(text: str) -> str:
            redacted = pii.redact(text)
            counts.update(redacted.counts)
            return redacted.text

        rendered = None
        if prepared.prompt:
            try:  # a missing or an unknown variable is the caller's error, named
                prepared.variables = {k: clean(str(v)) for k, v in options.variables.items()}
                rendered = prepared.prompt.render(prepared.variables)
            except InvalidInput as exc:
                raise GatewayError(
                    400, exc.message, code="invalid_prompt", param="kosmos.variables"
                ) from None
        if prepared.kind == "chat":
            messages = [{**m, "content": _clean_content(m.get("content"), clean)} for m in body["messages"]]
            if rendered is not None:
                head = [{"role": "system", "content": rendered}] if isinstance(rendered, str) else rendered
                messages = head + messages
            body["messages"] = messages
        else:
            prompt = clean(body["prompt"])
            body["prompt"] = prompt if rendered is None else f"{_as_text(rendered)}\n\n{prompt}"
        size = len(json.dumps(body.get("messages") or body.get("prompt")))
        if size > MAX_PROMPT_CHARS:
            raise GatewayError(
                400, f"the prompt is {size} characters; the gateway takes at most {MAX_PROMPT_CHARS}",
                code="context_length_exceeded", param="messages",
            )  # fmt: skip
        prepared.redacted = dict(counts)

    def _lookup(self, prepared: Prepared, request: Any, header: str | None) -> None:
        config = prepared.effective.cache
        if not config["enabled"]:
            return
        if header == "skip":
            prepared.cache = "skip"
            return
        query, system = _question(prepared.body, prepared.kind)
        sampled = request.temperature > 0 and not (config["cache_sampled"] or header == "sampled")
        if query is None or sampled or (request.stop and prepared.kind == "completion"):
            prepared.cache = "bypass"
            return
        params = {k: prepared.body.get(k) for k in PARTITIONING}
        params["temperature"] = request.temperature
        partition = Partition(
            project_id=prepared.project_id,
            model=prepared.model,
            model_version=prepared.routes[0].version,
            prompt=prepared.prompt.reference if prepared.prompt else None,
            prompt_version=prepared.prompt.version if prepared.prompt else None,
            system=json.dumps([prepared.kind, system, params], sort_keys=True),
        )
        try:
            prepared.namespace = self.cache.namespace(partition)
            prepared.query, prepared.vector = query, self.cache.embed(query)
            if header == "refresh":
                prepared.cache = "refresh"
                return
            prepared.lookup = self.cache.lookup(prepared.namespace, query, prepared.vector, config["guard"])
            prepared.cache = "hit" if prepared.lookup.hit else "miss"
            prepared.audit = prepared.lookup.hit and random.random() < config["audit_rate"]
        except (IndexUnavailable, SQLAlchemyError, OSError, RuntimeError, ValueError) as exc:  # fail open
            log.warning("semantic cache unavailable (%s); answering from the model", type(exc).__name__)
            prepared.cache, prepared.namespace = "error", None

    # -- after the model ------------------------------------------------------------
    def store(
        self, prepared: Prepared, text: str, finish: str | None, usage: dict[str, Any], version: Any
    ) -> int | None:
        """Cache a finished answer (redacted) when the first-choice model gave it."""
        if (
            prepared.cache not in ("miss", "refresh")
            or prepared.namespace is None
            or finish not in ("stop", "length")
        ):
            return None
        config = prepared.effective.cache
        answer = {
            "text": pii.redact(text).text,
            "finish_reason": finish,
            "usage": usage,
            "model_version": version,
        }
        try:
            return self.cache.store(
                prepared.namespace, prepared.query or "", prepared.vector, answer,
                config["ttl_seconds"], config["max_entries"],
            )  # fmt: skip
        except Exception as exc:  # a failed store loses a future hit, never this answer
            log.warning("could not store a cache entry: %s", type(exc).__name__)
            return None

    def trace(self, project: str, prepared: Prepared, outcome: Any) -> None:
        """One MLflow trace for the call (``outcome``: its ``chat.ChatOutcome``), in the project's
        ``<project>/gateway`` experiment. Never raises: tracing never fails a call."""
        if not self.settings.gateway.trace:
            return
        try:
            import mlflow

            experiment = self._experiment(project)
            inputs = {
                k: prepared.body.get(k)
                for k in ("messages", "prompt", "max_tokens", "temperature")
                if k in prepared.body
            }
            attributes = {
                "kosmos.project": project,
                "kosmos.model": prepared.model,
                "kosmos.deployment": outcome.deployment,
                "kosmos.model_version": outcome.model_version,
                "kosmos.prompt": prepared.prompt.reference if prepared.prompt else None,
                "kosmos.prompt_version": prepared.prompt.version if prepared.prompt else None,
                "kosmos.prompt_arm": prepared.prompt.arm if prepared.prompt else None,
                "kosmos.cache": prepared.cache,
                "kosmos.cache_similarity": prepared.lookup.similarity if prepared.lookup else None,
                "kosmos.cache_refused": prepared.lookup.rejected if prepared.lookup else None,
                "kosmos.redacted": prepared.redacted,
                "kosmos.fallback": outcome.fallback,
                "kosmos.latency_ms": outcome.latency_ms,
                "kosmos.prompt_tokens": outcome.prompt_tokens,
                "kosmos.completion_tokens": outcome.completion_tokens,
                "kosmos.status": outcome.status,
                "kosmos.request_id": outcome.request_id,
            }
            span = mlflow.start_span_no_context(
                f"{prepared.kind} {prepared.model}",
                span_type="LLM",
                inputs=inputs,
                attributes={k: v for k, v in attributes.items() if v is not None},
                experiment_id=experiment,
                start_time_ns=time.time_ns() - int((time.perf_counter() - prepared.started) * 1e9),
            )
            span.set_outputs({"text": pii.redact(outcome.text or "").text})
            span.end(status="ERROR" if outcome.status == "error" else "OK")
        except Exception as exc:  # tracing never fails a call
            log.warning("could not trace a gateway call: %s", exc)

    def _experiment(self, project: str) -> str:
        import mlflow
        from mlflow import MlflowClient

        if project not in self._experiments:
            with self._lock:
                if mlflow.get_tracking_uri() != self.settings.mlflow_tracking_uri:
                    mlflow.set_tracking_uri(self.settings.mlflow_tracking_uri)
                client = MlflowClient(self.settings.mlflow_tracking_uri)
                name = f"{project}/gateway"
                found = client.get_experiment_by_name(name)
                self._experiments[project] = (
                    found.experiment_id
                    if found
                    else client.create_experiment(name, tags={"kosmos.project": project})
                )
        return self._experiments[project]


def _serving_version(record: DeploymentRecord) -> str:
    """What the deployment serves now; a promotion or rollout changes it (and the cache partition)."""
    return f"{record.stable_version}" + (f"+{record.candidate_version}" if record.candidate_version else "")


def _options(body: dict[str, Any]) -> GatewayOptions:
    from pydantic import ValidationError

    raw = body.get("kosmos") or {}
    try:
        return GatewayOptions(**raw) if isinstance(raw, dict) else GatewayOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise GatewayError(
            400, f"kosmos.{where}: {first['msg']}", code="invalid_value", param=f"kosmos.{where}"
        ) from None


def _clean_content(content: Any, clean: Any) -> Any:
    """A message's content with ``clean`` applied to its text (a string, or text parts); copied."""
    if isinstance(content, str):
        return clean(content)
    if isinstance(content, list):
        return [
            {**p, "text": clean(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
            for p in content
        ]
    return content


def _as_text(rendered: Any) -> str:
    return rendered if isinstance(rendered, str) else "\n".join(str(m.get("content", "")) for m in rendered)


def _question(body: dict[str, Any], kind: str) -> tuple[str | None, str]:
    """The question to look up and everything before it; None when the call is not a single question
    (a multi-turn conversation's answer depends on more than its last message)."""
    if kind == "completion":
        return body["prompt"], ""
    messages = body["messages"]
    system = [m for m in messages[:-1] if m.get("role") in ("system", "developer")]
    last = messages[-1]
    if (
        len(system) != len(messages) - 1
        or last.get("role") != "user"
        or not isinstance(last.get("content"), str)
    ):
        return None, ""
    return last["content"], json.dumps([m.get("content") for m in system])
