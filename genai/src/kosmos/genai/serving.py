"""LLM deployments on Ray Serve: one ``LLMServer`` application per model version, and an ``LLMRouter``.

    control plane (/openai/v1/...) -> LLMRouter (ingress: traffic policy, stats) -> LLMServer "v2"
                                                                                 -> LLMServer "v3" (canary)

They reuse the classic deployments' machinery: the same records, reconciler, traffic
policy (the router's ``user_config``), rollouts and SLO checks. The replica speaks the
OpenAI format, so the control plane only relays chunks and records usage.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError
from ray import serve

from kosmos.deployment.model_cache import fetch_version
from kosmos.deployment.serving import _Window, model_app_name, window_stats
from kosmos.genai import engines, protocol
from kosmos.genai.engines.base import PromptTooLong, SamplingParams, UnsupportedParameter
from kosmos.genai.spec import LLMSpec
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)


class OpenAIError(Exception):
    """An error to return in OpenAI's shape, with its HTTP status."""

    def __init__(
        self, status: int, message: str, type_: str, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        self.status, self.body = status, protocol.error_body(message, type_, code, param)


def invalid(exc: ValidationError | ValueError) -> OpenAIError:
    if isinstance(exc, UnsupportedParameter):
        return OpenAIError(400, str(exc), "invalid_request_error", "unsupported_parameter", exc.param)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return OpenAIError(400, message, "invalid_request_error", "invalid_value", param)
    return OpenAIError(400, str(exc), "invalid_request_error", "invalid_value")


ACCEPTED: dict[str, Any] = {"accepted": True}
"""The first item of every ``LLMServer.generate`` stream: a replica has the request."""


@serve.deployment(max_ongoing_requests=64, health_check_period_s=10, graceful_shutdown_timeout_s=10)
class LLMServer:
    """One registered LLM version, loaded through the node-local model cache, served by its engine."""

    async def __init__(
        self, settings: dict[str, Any], project: str, model: str, version: int, llm: dict[str, Any]
    ) -> None:
        from kosmos.genai.models import hf_folder

        self.settings = Settings(**settings)
        self.spec = LLMSpec(**llm)
        self.version = version
        cached = fetch_version(self.settings, project, model, version)
        started = time.perf_counter()
        folder = hf_folder(cached.path)
        self.spec.check_model(json.loads((folder / "config.json").read_text()))
        self.engine = engines.resolve(self.spec, self.settings)(folder, self.spec, self.settings)
        await self.engine.start()
        self.info = {
            "version": version,
            "engine": self.engine.name,
            **self.engine.describe(),
            "content_hash": cached.content_hash,
            "cache": "warm" if cached.warm else "cold",
            "fetch_seconds": round(cached.seconds, 3),
            "load_seconds": round(time.perf_counter() - started, 3),
            "context_length": self.engine.context_length,
        }
        log.info("LLM %s.%s v%s ready: %s", project, model, version, self.info)

    def describe(self) -> dict[str, Any]:
        return self.info

    async def check_health(self) -> None:
        await self.engine.check_health()

    async def __del__(self) -> None:
        if getattr(self, "engine", None) is not None:
            await (
                self.engine.stop()
            )  # Serve calls this when it stops the replica: the engine's process goes too

    def _params(self, request: protocol._Sampling) -> SamplingParams:
        return SamplingParams(
            max_tokens=request.limit(self.spec.default_max_tokens),
            temperature=request.temperature,
            top_p=request.top_p,
            stop=tuple(request.stop or ()),
            seed=request.seed,
            frequency_penalty=request.frequency_penalty,
            presence_penalty=request.presence_penalty,
        )

    async def generate(self, body: dict[str, Any], kind: str) -> AsyncIterator[dict[str, Any]]:
        """OpenAI chunks for a chat or completion request; the last item is ``{"usage": ...}``.

        Errors come as one ``{"error": ..., "status": ...}`` item, before any chunk. The first item
        of all is ``ACCEPTED``: the router knows a replica took the request (see ``LLMRouter``).
        """
        yield ACCEPTED
        created, started = int(time.time()), time.perf_counter()
        try:
            if kind == "chat":
                request: Any = protocol.ChatCompletionRequest(**body)
                messages = [{"role": m.role, "content": m.text()} for m in request.messages]
                prompt_ids = self.engine.encode_chat(messages)
            else:
                request = protocol.CompletionRequest(**body)
                prompt_ids = self.engine.encode(request.prompt)
            params = self._params(request)
            stream = self.engine.generate(prompt_ids, params)
            first = await anext(stream)
        except (ValidationError, ValueError) as exc:
            error = (
                invalid(exc)
                if not isinstance(exc, PromptTooLong)
                else OpenAIError(
                    400, str(exc), "invalid_request_error", "context_length_exceeded", "messages"
                )
            )
            yield {"error": error.body, "status": error.status}
            return
        id_ = protocol.new_id("chatcmpl" if kind == "chat" else "cmpl")
        ttft = time.perf_counter() - started
        delta, role = first, True
        while True:
            if kind == "chat":
                yield protocol.chat_chunk(id_, request.model, created, delta.text, delta.finish_reason, role)
            else:
                yield protocol.completion_chunk(id_, request.model, created, delta.text, delta.finish_reason)
            role = False
            if delta.finish_reason is not None:
                break
            delta = await anext(stream)
        yield {
            "usage": protocol.usage(delta.prompt_tokens, delta.completion_tokens),
            "ttft_ms": round(ttft * 1000, 2),
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "model_version": self.version,
        }


@serve.deployment(
    ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=1000, graceful_shutdown_timeout_s=10
)
class LLMRouter:
    """The LLM deployment's ingress: picks a version by the traffic policy and keeps per-version stats."""

    def __init__(self, settings: dict[str, Any], project: str, deployment: str, app: str) -> None:
        self.project, self.deployment, self.app = project, deployment, app
        self.replica_wait_s = Settings(**settings).llm.replica_wait_seconds
        self.traffic: dict[int, float] = {}
        self.handles: dict[int, Any] = {}
        self.windows: dict[int, _Window] = {}

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.traffic = {int(v): float(w) for v, w in config["traffic"].items() if float(w) > 0}
        self.handles = {v: h for v, h in self.handles.items() if v in self.traffic}  # retired versions go

    def _handle(self, version: int) -> Any:
        if version not in self.handles:
            self.handles[version] = serve.get_deployment_handle(
                "model", app_name=model_app_name(self.app, version)
            ).options(stream=True)
        return self.handles[version]

    async def generate(self, body: dict[str, Any], kind: str) -> AsyncIterator[dict[str, Any]]:
        versions, weights = zip(*self.traffic.items(), strict=True)
        version = random.choices(versions, weights)[0]
        started, ok = time.perf_counter(), False
        responses = self._handle(version).generate.remote(body, kind)
        try:
            # Serve queues a request while its version has no replica (one restarting after its
            # engine died): a caller gets a 503 after replica_wait_s instead of waiting for the restart
            try:
                first = await asyncio.wait_for(anext(responses), self.replica_wait_s)
            except TimeoutError:
                log.warning("LLM v%s: no replica took a request in %ss", version, self.replica_wait_s)
                yield {
                    "error": protocol.error_body(
                        f"model version {version} has no running replica (it is restarting); retry shortly",
                        "server_error",
                    ),
                    "status": 503,
                }
                return
            if first != ACCEPTED:  # a version app that does not announce itself (Ray Serve LLM's)
                ok = ok or "usage" in first
                yield first
            async for item in responses:
                if "usage" in item:
                    ok = True
                yield item
        except Exception as exc:
            log.warning("LLM v%s failed: %s", version, type(exc).__name__)
            yield {
                "error": protocol.error_body(f"model version {version} failed", "server_error"),
                "status": 503,
            }
        finally:
            if not ok:  # the client went away mid-stream: stop generating for it
                responses.cancel()
            self.windows.setdefault(version, _Window()).add((time.perf_counter() - started) * 1000, ok)

    def stats(self, since: float = 0.0, bucket_s: float = 0.0) -> dict[str, Any]:
        out = window_stats(self.windows, since, bucket_s)
        out["policy"] = {"traffic": {str(v): w for v, w in self.traffic.items()}}
        return out


def build_targets(record: Any, project: str, settings: Settings) -> list[Any]:
    """Serve applications for an LLM deployment record: its router and one app per live version."""
    from ray.serve.api import RunTarget

    from kosmos.deployment import rollouts
    from kosmos.deployment.targets import (
        CODE_VERSION,
        live_versions,
        pinned,
        router_options,
        scaling_options,
    )

    spec = rollouts.spec_of(record)
    llm = LLMSpec(**spec.llm)
    app = rollouts.app_name(project, record.name)
    payload = settings.model_dump(mode="json")
    resources = {"num_cpus": spec.num_cpus, "num_gpus": llm.num_gpus}
    options_key = hashlib.sha256(json.dumps(spec.llm, sort_keys=True).encode()).hexdigest()[:8]
    engine = engines.resolve(llm, settings)
    engine.check_spec(llm)
    resolved = {**spec.llm, "engine": engine.name}  # decided once here; replicas load what was chosen
    versions = {}
    for v in live_versions(record):
        own = engine.version_app(llm, _version_context(record, project, settings, v))
        versions[v] = own or pinned(
            LLMServer.options(name="model", ray_actor_options=resources, **scaling_options(spec)),
            f"{CODE_VERSION}-{spec.model}-{v}-{options_key}",
        ).bind(payload, project, spec.model, v, resolved)
    targets = [
        RunTarget(bound, name=model_app_name(app, v), route_prefix=None) for v, bound in versions.items()
    ]
    router = pinned(
        LLMRouter.options(name="router", user_config=rollouts.router_config(record), **router_options(spec)),
        CODE_VERSION,
    ).bind(payload, project, record.name, app)
    return [*targets, RunTarget(router, name=app, route_prefix=None)]


def _version_context(record: Any, project: str, settings: Settings, version: int) -> dict[str, Any]:
    """What an engine that builds its own version app needs; the weights come from the model
    cache (fetched here; the prefetch fills every node's cache at the same content-addressed path)."""
    from kosmos.deployment import rollouts
    from kosmos.deployment.targets import scaling_options
    from kosmos.genai.models import hf_folder

    spec = rollouts.spec_of(record)

    def model_source() -> str:
        return str(hf_folder(fetch_version(settings, project, spec.model, version).path))

    return {
        "model_id": record.name,
        "model_source": model_source,
        "scaling": scaling_options(spec),
        "version": version,
    }
