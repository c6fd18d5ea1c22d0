"""One chat or completion call through the gateway, apart from HTTP.

    parse -> limits, prompt, PII, cache lookup (``Gateway.prepare``) -> the first route that
    answers (the later ones are fallbacks) -> the answer, whole or streamed -> cache store
    -> usage row, quota, trace (queued: ``kosmos.genai.usage``)

:func:`complete` returns a typed :class:`ChatOutcome`, or a :class:`ChatStream` when the
request streams and a model took it. The OpenAI routes of both planes turn it into HTTP
(``api.py``); the assistant reads it directly. Nothing after the answer is written on the
request's path: the usage row and the trace go to the gateway's recorder, which writes them
in batches and flushes when the process stops.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kosmos.deployment.api import app_handle, forget_handle
from kosmos.genai import protocol
from kosmos.genai.decision import llm_record
from kosmos.genai.gateway import CACHE_HEADER, CACHE_MODES, Gateway, GatewayError, Prepared, Route
from kosmos.genai.serving import invalid
from kosmos.platform import pii
from kosmos.platform.api.deps import Call
from kosmos.platform.db.models import Role
from kosmos.platform.errors import NotFound
from kosmos.platform.logs import request_id_var

log = logging.getLogger(__name__)
_pending: set[asyncio.Task[None]] = set()  # stores of streamed answers and audits, after the answer


@dataclass
class ChatOutcome:
    """What one call came to: the answer or the error, and how the gateway got there."""

    kind: str
    """``chat`` or ``completion``."""
    model: str
    request_id: str
    status: str = "error"
    """ok, error (refused or failed) or cancelled (the client left mid-stream)."""
    http_status: int = 200
    error: dict[str, Any] | None = None
    """The OpenAI error body (``{"error": {...}}``) when the call did not succeed."""
    text: str = ""
    finish: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    latency_ms: float | None = None
    deployment: str | None = None
    fallback: str | None = None
    """The fallback deployment that answered, when the first route could not."""
    model_version: Any = None
    cache: str | None = None
    """hit, miss, refresh, skip, bypass or error; None when the cache was not consulted."""
    cache_entry: int | None = None
    cache_similarity: float | None = None
    prompt_label: str | None = None
    tokens_saved: int = 0
    response_id: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def headers(self) -> dict[str, str]:
        """The gateway's response headers (the platform adds ``X-Request-Id``)."""
        headers = dict(self.extra_headers)
        if self.cache:
            headers[CACHE_HEADER] = self.cache
        if self.prompt_label:
            headers["X-Kosmos-Prompt"] = self.prompt_label
        if self.fallback:
            headers["X-Kosmos-Fallback"] = self.fallback
        if self.cache_entry is not None:
            headers["X-Kosmos-Cache-Entry"] = str(self.cache_entry)
        if self.cache_similarity is not None:
            headers["X-Kosmos-Cache-Similarity"] = f"{self.cache_similarity:.4f}"
        return headers

    def body(self) -> dict[str, Any]:
        """The OpenAI response: the completion, or the error body."""
        if self.error is not None or not self.ok:
            return self.error or protocol.error_body("the call did not finish", "server_error")
        if self.kind == "chat":
            return protocol.chat_response(
                self.response_id, self.model, self.text, self.finish or "stop",
                self.prompt_tokens, self.completion_tokens,
            )  # fmt: skip
        return {
            **protocol.completion_chunk(
                self.response_id, self.model, int(time.time()), self.text, self.finish
            ),
            "usage": protocol.usage(self.prompt_tokens, self.completion_tokens),
        }


@dataclass
class ChatStream:
    """A streamed answer: OpenAI chunks from :meth:`chunks`; ``outcome`` is complete once they end."""

    outcome: ChatOutcome
    _chunks: AsyncIterator[dict[str, Any]]

    def chunks(self) -> AsyncIterator[dict[str, Any]]:
        return self._chunks


async def complete(
    call: Call,
    gateway: Gateway,
    project: str,
    body: dict[str, Any],
    kind: str,
    cache_header: str | None = None,
) -> ChatOutcome | ChatStream:
    """Answer one OpenAI chat (``kind="chat"``) or completion request for the caller in ``project``."""
    request_id = request_id_var.get() or uuid.uuid4().hex  # the X-Request-Id the platform answers with
    if not isinstance(body, dict):
        error = invalid(ValueError("the body must be a JSON object"))
        return ChatOutcome(kind, "", request_id, http_status=error.status, error=error.body)
    schema = protocol.ChatCompletionRequest if kind == "chat" else protocol.CompletionRequest
    try:
        request = schema(**body)
    except (ValidationError, ValueError) as exc:
        error = invalid(exc)
        model = str(body.get("model") or "")
        return ChatOutcome(kind, model, request_id, http_status=error.status, error=error.body)
    header = (cache_header or "").strip().lower() or None
    if header is not None and header not in CACHE_MODES:
        message = f"{CACHE_HEADER} takes {', '.join(CACHE_MODES)}; got {header!r}"
        error_body = protocol.error_body(message, "invalid_request_error")
        return ChatOutcome(kind, request.model, request_id, http_status=400, error=error_body)
    try:
        prepared = await run_in_threadpool(_prepare, call, gateway, project, request, body, kind, header)
    except GatewayError as exc:
        return ChatOutcome(
            kind, request.model, request_id, http_status=exc.status, extra_headers=exc.headers,
            error=protocol.error_body(str(exc), exc.type, exc.code, exc.param),
        )  # fmt: skip
    outcome = ChatOutcome(
        kind, request.model, request_id, cache=prepared.cache, prompt_label=prepared.prompt_label,
        deployment=prepared.routes[0].name,
    )  # fmt: skip
    if prepared.cache == "hit":
        return _from_cache(call, gateway, project, prepared, request, outcome)
    failures: list[str] = []
    for route in prepared.routes:
        responses, first = await _open(call, project, route, prepared, failures)
        if responses is not None:
            break
    else:
        outcome.http_status = 503
        outcome.error = protocol.error_body("; ".join(failures), "server_error")
        _record(call, gateway, project, prepared, outcome)
        return outcome
    outcome.deployment = route.name
    outcome.fallback = route.name if route is not prepared.routes[0] else None
    if "error" in first:  # the model refused the request (e.g. too long): nothing to cache
        outcome.http_status, outcome.error = first.get("status", 500), first["error"]
        _record(call, gateway, project, prepared, outcome, first)
        return outcome
    outcome.response_id = first["id"]
    if request.stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return ChatStream(
            outcome, _relay(call, gateway, project, prepared, responses, first, outcome, include_usage)
        )
    chunks = [first] + [item async for item in responses]
    final = chunks[-1]
    outcome.text = "".join(_text(c, kind) for c in chunks[:-1])
    outcome.finish = chunks[-2]["choices"][0]["finish_reason"] if len(chunks) > 1 else None
    if "error" in final:
        outcome.http_status, outcome.error = final.get("status", 503), final["error"]
    else:
        outcome.status = "ok"
        outcome.cache_entry = await run_in_threadpool(_store, gateway, prepared, outcome, final)
    _record(call, gateway, project, prepared, outcome, final)
    return outcome


def _prepare(
    call: Call,
    gateway: Gateway,
    project: str,
    request: Any,
    body: dict[str, Any],
    kind: str,
    header: str | None,
) -> Prepared:
    with call.tx() as ctx:
        project_id = ctx.project(project, Role.viewer).id
        routes = gateway.routes(ctx.session, project_id, request.model, gateway.effective(project_id))
    return gateway.prepare(project, project_id, routes, body, request, kind, header, call.principal.user_name)


async def _open(
    call: Call, project: str, route: Route, prepared: Prepared, failures: list[str]
) -> tuple[Any, Any]:
    """Start generating on ``route``; (None, None) when it cannot answer (the next route is tried)."""
    for attempt in (1, 2):  # nothing was generated yet, so a stale handle may be retried once
        try:
            handle = await run_in_threadpool(app_handle, call, project, route.name)
            responses = handle.options(stream=True).generate.remote(prepared.body, prepared.kind)
            first = await anext(responses.__aiter__())
        except NotFound:
            failures.append(f"{route.name!r} is not serving yet ({route.status}: {route.reason})")
            return None, None
        except Exception as exc:
            forget_handle(project, route.name)
            if attempt == 2:
                failures.append(f"{route.name!r} did not answer: {type(exc).__name__}")
                return None, None
            continue
        if "error" in first and first.get("status", 500) >= 500:
            failures.append(f"{route.name!r} failed: {first['error']['error']['message']}")
            return None, None
        return responses, first
    return None, None


def _store(gateway: Gateway, prepared: Prepared, outcome: ChatOutcome, final: dict[str, Any]) -> int | None:
    """Cache an answer the first-choice model gave (blocking: the embedding and one write)."""
    if outcome.fallback:
        return None
    return gateway.store(
        prepared, outcome.text, outcome.finish, final.get("usage") or {}, final.get("model_version")
    )


def _record(
    call: Call,
    gateway: Gateway,
    project: str,
    prepared: Prepared,
    outcome: ChatOutcome,
    final: dict[str, Any] | None = None,
) -> None:
    """Queue the usage row, the quota charge and the trace (no I/O here: the recorder's thread
    does them within ``gateway.usage_flush_seconds``, so a daily token quota lags by that much)."""
    final = final or {}
    usage = final.get("usage") or {}
    outcome.latency_ms = round((time.perf_counter() - prepared.started) * 1000, 2)
    outcome.model_version = final.get("model_version", outcome.model_version)
    outcome.ttft_ms = final.get("ttft_ms", outcome.ttft_ms)
    if usage:
        outcome.prompt_tokens = usage.get("prompt_tokens", 0)
        outcome.completion_tokens = usage.get("completion_tokens", 0)
    row = {
        "deployment": outcome.deployment,
        "endpoint": outcome.kind,
        "request_id": outcome.request_id,
        "model_version": outcome.model_version,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "latency_ms": outcome.latency_ms,
        "ttft_ms": outcome.ttft_ms,
        "status": outcome.status,
        "cache": prepared.cache,
        "prompt": prepared.prompt_label,
        "redacted": sum(prepared.redacted.values()),
        "fallback": outcome.fallback,
        "tokens_saved": outcome.tokens_saved,
        "cache_namespace": prepared.namespace.id if prepared.namespace else None,
    }

    def after() -> None:
        gateway.limits.spend(prepared.project_id, outcome.prompt_tokens + outcome.completion_tokens)
        gateway.trace(project, prepared, outcome)

    gateway.recorder.add(prepared.project_id, call.principal.user_name, row, after)
    gateway.decisions.add(llm_record(project, call.principal.user_name, prepared, outcome))


async def _audit(call: Call, gateway: Gateway, project: str, prepared: Prepared, request_id: str) -> None:
    """Answer an audited hit again on the first route, after the cached answer was served, and
    record whether the two agreed (the sample behind the estimated false-hit rate). The model call
    is metered as a usage row of its own (``cache: audit``), not charged to the caller's quota."""
    started = time.perf_counter()
    try:
        route = prepared.routes[0]
        responses, first = await _open(call, project, route, prepared, [])
        if responses is None or "error" in first:
            return
        chunks = [first] + [item async for item in responses]
        usage = chunks[-1].get("usage") or {}
        gateway.recorder.add(
            prepared.project_id,
            call.principal.user_name,
            {
                "deployment": route.name, "endpoint": prepared.kind, "request_id": request_id,
                "model_version": chunks[-1].get("model_version"),
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "status": "error" if "error" in chunks[-1] else "ok", "cache": "audit",
                "prompt": prepared.prompt_label,
                "cache_namespace": prepared.namespace.id if prepared.namespace else None,
            },
        )  # fmt: skip
        if "error" in chunks[-1]:
            return
        text = pii.redact("".join(_text(c, prepared.kind) for c in chunks[:-1])).text
        lookup = prepared.lookup
        assert lookup is not None and lookup.entry_id is not None and prepared.namespace is not None
        cached = (lookup.answer or {}).get("text", "")
        agreed = await run_in_threadpool(gateway.cache.agrees, text, cached)
        policy = await run_in_threadpool(gateway.effective, prepared.project_id)  # may read the database
        bound = policy.cache["max_false_hit_rate"]
        await run_in_threadpool(
            gateway.cache.record_audit, prepared.project_id, prepared.namespace.id, lookup.entry_id,
            prepared.model, agreed, lookup.similarity or 1.0, bound,
        )  # fmt: skip
    except Exception as exc:  # an audit never fails anything
        log.warning("could not audit a cache hit: %s", type(exc).__name__)


def _from_cache(
    call: Call, gateway: Gateway, project: str, prepared: Prepared, request: Any, outcome: ChatOutcome
) -> ChatOutcome | ChatStream:
    lookup = prepared.lookup
    assert lookup is not None and lookup.answer is not None
    answer = lookup.answer
    usage = answer.get("usage") or {}
    outcome.status, outcome.text = "ok", answer["text"]
    outcome.finish = answer.get("finish_reason") or "stop"
    outcome.model_version = answer.get("model_version")
    outcome.prompt_tokens = usage.get("prompt_tokens", 0)
    outcome.completion_tokens = usage.get("completion_tokens", 0)
    outcome.tokens_saved = outcome.prompt_tokens + outcome.completion_tokens
    outcome.cache_entry, outcome.cache_similarity = lookup.entry_id, lookup.similarity
    outcome.response_id = protocol.new_id("chatcmpl" if prepared.kind == "chat" else "cmpl")
    _record(call, gateway, project, prepared, outcome)
    if prepared.audit:  # after the answer, never before it
        audit = _audit(call, gateway, project, prepared, outcome.request_id)
        task = asyncio.get_running_loop().create_task(audit)
        _pending.add(task)
        task.add_done_callback(_pending.discard)
    if not request.stream:
        return outcome
    include_usage = bool((request.model_extra or {}).get("stream_options", {}).get("include_usage"))
    return ChatStream(outcome, _replay(outcome, include_usage))


async def _replay(outcome: ChatOutcome, include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    """A cached answer, streamed word by word as a streaming client expects."""
    id_, model, created = outcome.response_id, outcome.model, int(time.time())
    pieces = re.findall(r"\s*\S+|\s+$", outcome.text) or [outcome.text]
    if outcome.kind == "chat":
        chunks = [
            protocol.chat_chunk(id_, model, created, p, None, role=i == 0) for i, p in enumerate(pieces)
        ]
        chunks.append(protocol.chat_chunk(id_, model, created, None, outcome.finish))
    else:
        chunks = [protocol.completion_chunk(id_, model, created, p, None) for p in pieces]
        chunks.append(protocol.completion_chunk(id_, model, created, "", outcome.finish))
    if include_usage:
        usage = protocol.usage(outcome.prompt_tokens, outcome.completion_tokens)
        chunks.append({**_shell(chunks[0]), "choices": [], "usage": usage})
    for chunk in chunks:
        yield chunk


async def _relay(
    call: Call,
    gateway: Gateway,
    project: str,
    prepared: Prepared,
    responses: Any,
    first: dict[str, Any],
    outcome: ChatOutcome,
    include_usage: bool,
) -> AsyncIterator[dict[str, Any]]:
    """The model's chunks as they come; an error mid-stream is the last chunk (OpenAI's shape)."""
    final: dict[str, Any] = {}
    parts, finish = [_text(first, prepared.kind)], first["choices"][0]["finish_reason"]
    outcome.status = "cancelled"  # until the stream ends
    try:
        yield first
        async for item in responses:
            if "usage" in item or "error" in item:
                final = item
                break
            parts.append(_text(item, prepared.kind))
            finish = item["choices"][0]["finish_reason"] or finish
            yield item
        if "error" in final:
            outcome.error = final["error"]
            yield final["error"]
        elif include_usage:
            yield {**_shell(first), "choices": [], "usage": final["usage"]}
        outcome.status = "error" if "error" in final else "ok"
    finally:  # no await here: this may run while the task is being cancelled (a disconnect)
        if outcome.status == "cancelled":  # the client left: stop generating for it
            responses.cancel()
        outcome.text, outcome.finish = "".join(parts), finish
        _record(call, gateway, project, prepared, outcome, final)
        if outcome.ok:  # the embedding and the write run in a thread, after the stream
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(_store, gateway, prepared, outcome, final)
            )
            _pending.add(task)
            task.add_done_callback(_pending.discard)


def _text(chunk: dict[str, Any], kind: str) -> str:
    choice = chunk["choices"][0]
    return (choice["delta"].get("content") or "") if kind == "chat" else choice["text"]


def _shell(chunk: dict[str, Any]) -> dict[str, Any]:
    return {k: chunk[k] for k in ("id", "object", "created", "model")}
