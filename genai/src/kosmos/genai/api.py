"""The OpenAI-compatible API of a project's LLM deployments, and their usage.

Base URL for OpenAI clients: ``{control plane}/api/v1/projects/{project}/openai/v1``, with a
Kosmos token as the API key; ``model`` is the LLM deployment's name. The project in the
path is what the platform authorizes, so a token never reaches another project's models.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from kosmos.deployment.api import app_handle, forget_handle
from kosmos.deployment.models import DeploymentRecord
from kosmos.genai import protocol
from kosmos.genai.assistant.api import router as assistant_router
from kosmos.genai.embeddings import DIMENSIONS, EMBEDDING_MODEL, embedding_handle
from kosmos.genai.gateway import CACHE_HEADER, CACHE_MODES, Gateway, GatewayError, Prepared, Route
from kosmos.genai.gateway_api import router as gateway_router
from kosmos.genai.models_db import LLMUsage
from kosmos.genai.serving import invalid
from kosmos.platform.api import Call, CallDep
from kosmos.platform.db.models import Role
from kosmos.platform.errors import NotFound
from kosmos.platform.identity.names import Name
from kosmos.platform.logs import request_id_var
from kosmos.platform.ray_cluster import connect

router = APIRouter(tags=["llm"])
_pending: set[asyncio.Task[None]] = set()  # usage records being written after a disconnect
openai = APIRouter(prefix="/projects/{project}/openai/v1", tags=["openai"])


def _error(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(protocol.error_body(message, type_, code, param), status_code=status, headers=headers)


def _llm_records(ctx: Any, project_id: int) -> list[DeploymentRecord]:
    records = ctx.session.scalars(select(DeploymentRecord).where(DeploymentRecord.project_id == project_id))
    return [r for r in records if (r.spec or {}).get("llm") is not None]


def _project_id(call: Call, project: str) -> int:
    with call.tx() as ctx:
        return ctx.project(project, Role.viewer).id


_gateway_lock = threading.Lock()


def gateway_of(call: Call) -> Gateway:
    """The control plane's gateway (made on first use)."""
    state = call.request.app.state
    if getattr(state, "gateway", None) is None:
        with _gateway_lock:
            if getattr(state, "gateway", None) is None:
                state.gateway = Gateway(call.settings, state.database)
    return state.gateway


@openai.get("/models", summary="The project's LLM deployments and gateway routes, as OpenAI models")
def list_models(project: Name, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        project_row = ctx.project(project, Role.viewer)
        records = _llm_records(ctx, project_row.id)
    routes = gateway_of(call).effective(project_row.id).routes
    data = [
        {"id": r.name, "object": "model", "created": int(r.created_at.timestamp()), "owned_by": project}
        for r in records
    ]
    data += [
        {"id": name, "object": "model", "created": 0, "owned_by": project}
        for name in sorted(routes)
        if name not in {r.name for r in records}
    ]
    data.append({"id": EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "kosmos"})
    return {"object": "list", "data": data}


def _record_usage(call: Call, project_id: int, entry: dict[str, Any]) -> None:
    """One usage row (the caller was authorized on the project when the request began)."""
    with call.tx() as ctx:
        ctx.session.add(LLMUsage(project_id=project_id, actor=call.principal.user_name, **entry))


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


def _gateway_error(exc: GatewayError) -> JSONResponse:
    return _error(exc.status, str(exc), exc.type, exc.code, exc.param, exc.headers)


async def _generate(call: Call, project: str, body: dict[str, Any], kind: str) -> Any:
    model = protocol.ChatCompletionRequest if kind == "chat" else protocol.CompletionRequest
    try:
        request = model(**body)
    except (ValidationError, ValueError) as exc:
        error = invalid(exc)
        return JSONResponse(error.body, status_code=error.status)
    header = (call.request.headers.get(CACHE_HEADER) or "").strip().lower() or None
    if header is not None and header not in CACHE_MODES:
        return _error(
            400, f"{CACHE_HEADER} takes {', '.join(CACHE_MODES)}; got {header!r}", "invalid_request_error"
        )
    gateway = gateway_of(call)
    try:
        prepared = await run_in_threadpool(_prepare, call, gateway, project, request, body, kind, header)
    except GatewayError as exc:
        return _gateway_error(exc)
    request_id = request_id_var.get() or uuid.uuid4().hex  # the X-Request-Id the platform answers with
    if prepared.cache == "hit":
        return await _from_cache(call, gateway, project, prepared, request, request_id)
    failures: list[str] = []
    responses: Any = None
    for route in prepared.routes:
        responses, first = await _open(call, project, route, prepared, failures)
        if responses is not None:
            break
    else:
        outcome = {
            "deployment": prepared.routes[0].name,
            "status": "error",
            "text": "",
            "request_id": request_id,
        }
        await run_in_threadpool(_finish, call, gateway, project, prepared, outcome, kind)
        return _error(503, "; ".join(failures), "server_error")
    outcome = {
        "deployment": route.name,
        "fallback": route.name if route is not prepared.routes[0] else None,
        "request_id": request_id,
    }
    headers = _headers(prepared, outcome)
    if "error" in first:  # the model refused the request (e.g. too long): nothing to cache
        outcome.update(status="error", final=first, text="")
        await run_in_threadpool(_finish, call, gateway, project, prepared, outcome, kind)
        return JSONResponse(first["error"], status_code=first.get("status", 500), headers=headers)
    if request.stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _sse(call, gateway, project, prepared, responses, first, outcome, include_usage),
            media_type="text/event-stream",
            headers=headers,
        )
    chunks = [first] + [item async for item in responses]
    final = chunks[-1]
    text = "".join(_text(c, kind) for c in chunks[:-1])
    outcome.update(final=final, text=text, status="error" if "error" in final else "ok")
    outcome["finish"] = chunks[-2]["choices"][0]["finish_reason"] if len(chunks) > 1 else None
    entry = await run_in_threadpool(_finish, call, gateway, project, prepared, outcome, kind)
    if "error" in final:
        return JSONResponse(final["error"], status_code=final.get("status", 503), headers=headers)
    if entry:
        headers["X-Kosmos-Cache-Entry"] = str(entry)
    u = final["usage"]
    return JSONResponse(
        _response(kind, first["id"], request.model, text, outcome["finish"], u), headers=headers
    )


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


def _headers(prepared: Prepared, outcome: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}  # the platform's middleware adds X-Request-Id (the usage row's id)
    if prepared.cache:
        headers[CACHE_HEADER] = prepared.cache
    if prepared.prompt_label:
        headers["X-Kosmos-Prompt"] = prepared.prompt_label
    if outcome.get("fallback"):
        headers["X-Kosmos-Fallback"] = outcome["fallback"]
    return headers


def _response(kind: str, id_: str, model: str, text: str, finish: str, u: dict[str, int]) -> dict[str, Any]:
    if kind == "chat":
        return protocol.chat_response(id_, model, text, finish, u["prompt_tokens"], u["completion_tokens"])
    return {
        **protocol.completion_chunk(id_, model, int(time.time()), text, finish),
        "usage": protocol.usage(u["prompt_tokens"], u["completion_tokens"]),
    }


def _finish(
    call: Call, gateway: Gateway, project: str, prepared: Prepared, outcome: dict[str, Any], kind: str
) -> int | None:
    """After the answer: cache it, record usage, charge the quota, trace. Returns a new cache entry's id."""
    final = outcome.get("final") or {}
    usage = final.get("usage") or {}
    entry = None
    if outcome.get("status") == "ok" and not outcome.get("fallback"):
        entry = gateway.store(
            prepared, outcome.get("text") or "", outcome.get("finish"), usage, final.get("model_version")
        )
    latency = round((time.perf_counter() - prepared.started) * 1000, 2)
    outcome.update(
        latency_ms=latency,
        model_version=final.get("model_version"),
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
    )
    _record_usage(
        call,
        prepared.project_id,
        {
            "deployment": outcome["deployment"],
            "endpoint": kind,
            "request_id": outcome["request_id"],
            "model_version": final.get("model_version"),
            "prompt_tokens": outcome["prompt_tokens"],
            "completion_tokens": outcome["completion_tokens"],
            "latency_ms": latency,
            "ttft_ms": final.get("ttft_ms"),
            "status": outcome.get("status", "error"),
            "cache": prepared.cache,
            "prompt": prepared.prompt_label,
            "redacted": sum(prepared.redacted.values()),
            "fallback": outcome.get("fallback"),
            "tokens_saved": outcome.get("tokens_saved", 0),
        },
    )
    gateway.limits.spend(prepared.project_id, outcome["prompt_tokens"] + outcome["completion_tokens"])
    gateway.trace(project, prepared, outcome)
    return entry


async def _from_cache(
    call: Call, gateway: Gateway, project: str, prepared: Prepared, request: Any, request_id: str
) -> Any:
    answer = prepared.lookup.answer  # type: ignore[union-attr]
    usage = answer.get("usage") or {}
    text, finish = answer["text"], answer.get("finish_reason") or "stop"
    outcome = {
        "deployment": prepared.routes[0].name,
        "request_id": request_id,
        "status": "ok",
        "text": text,
        "final": {"model_version": answer.get("model_version")},
        "tokens_saved": usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0),
    }
    headers = _headers(prepared, outcome)
    headers["X-Kosmos-Cache-Entry"] = str(prepared.lookup.entry_id)  # type: ignore[union-attr]
    headers["X-Kosmos-Cache-Similarity"] = f"{prepared.lookup.similarity:.4f}"  # type: ignore[union-attr]
    await run_in_threadpool(_finish, call, gateway, project, prepared, outcome, prepared.kind)
    u = {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
    }
    id_ = protocol.new_id("chatcmpl" if prepared.kind == "chat" else "cmpl")
    if not request.stream:
        return JSONResponse(_response(prepared.kind, id_, request.model, text, finish, u), headers=headers)
    created = int(time.time())
    pieces = re.findall(r"\s*\S+|\s+$", text) or [text]  # word by word, as a streaming client expects
    if prepared.kind == "chat":
        chunks = [
            protocol.chat_chunk(id_, request.model, created, piece, None, role=i == 0)
            for i, piece in enumerate(pieces)
        ]
        chunks.append(protocol.chat_chunk(id_, request.model, created, None, finish))
    else:
        chunks = [protocol.completion_chunk(id_, request.model, created, piece, None) for piece in pieces]
        chunks.append(protocol.completion_chunk(id_, request.model, created, "", finish))
    if (request.model_extra or {}).get("stream_options", {}).get("include_usage"):
        chunks.append({**_shell(chunks[0]), "choices": [], "usage": protocol.usage(**u)})

    async def replay() -> AsyncIterator[str]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(replay(), media_type="text/event-stream", headers=headers)


def _text(chunk: dict[str, Any], kind: str) -> str:
    choice = chunk["choices"][0]
    return (choice["delta"].get("content") or "") if kind == "chat" else choice["text"]


async def _sse(
    call: Call,
    gateway: Gateway,
    project: str,
    prepared: Prepared,
    responses: Any,
    first: dict[str, Any],
    outcome: dict[str, Any],
    include_usage: bool,
) -> AsyncIterator[str]:
    final: dict[str, Any] = {}
    status, parts, finish = "cancelled", [_text(first, prepared.kind)], first["choices"][0]["finish_reason"]
    try:
        yield f"data: {json.dumps(first)}\n\n"
        async for item in responses:
            if "usage" in item or "error" in item:
                final = item
                break
            parts.append(_text(item, prepared.kind))
            finish = item["choices"][0]["finish_reason"] or finish
            yield f"data: {json.dumps(item)}\n\n"
        if "error" in final:
            yield f"data: {json.dumps(final['error'])}\n\n"
        elif include_usage:
            yield f"data: {json.dumps({**_shell(first), 'choices': [], 'usage': final['usage']})}\n\n"
        yield "data: [DONE]\n\n"
        status = "error" if "error" in final else "ok"
    finally:
        if status == "cancelled":  # the client disconnected: stop generating for it
            responses.cancel()
        outcome.update(final=final, text="".join(parts), status=status, finish=finish)
        # this task may be cancelled (a disconnect): finish in a task of its own, not with an await here
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(_finish, call, gateway, project, prepared, outcome, prepared.kind)
        )
        _pending.add(task)
        task.add_done_callback(_pending.discard)


def _shell(chunk: dict[str, Any]) -> dict[str, Any]:
    return {k: chunk[k] for k in ("id", "object", "created", "model")}


@openai.post(
    "/chat/completions", summary="OpenAI chat completions through the gateway (streaming with stream: true)"
)
async def chat_completions(project: Name, body: dict[str, Any], call: CallDep) -> Any:
    return await _generate(call, project, body, "chat")


@openai.post(
    "/completions", summary="OpenAI text completions through the gateway (streaming with stream: true)"
)
async def completions(project: Name, body: dict[str, Any], call: CallDep) -> Any:
    return await _generate(call, project, body, "completion")


@openai.post("/embeddings", summary=f"OpenAI embeddings ({EMBEDDING_MODEL}, {DIMENSIONS} dimensions)")
async def embeddings(project: Name, body: dict[str, Any], call: CallDep) -> Any:
    try:
        request = protocol.EmbeddingRequest(**body)
        texts = request.texts()
    except (ValidationError, ValueError) as exc:
        error = invalid(exc)
        return JSONResponse(error.body, status_code=error.status)
    if request.model != EMBEDDING_MODEL:
        return _error(
            404,
            f"the embedding model is {EMBEDDING_MODEL!r}",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    project_id = await run_in_threadpool(_project_id, call, project)
    started = time.perf_counter()
    for attempt in (1, 2):  # a handle made before the app was restarted fails once: make a new one
        try:
            handle = await run_in_threadpool(_embedding_handle, call)
            result = await handle.embed.remote(texts)
            break
        except Exception as exc:
            _embedder.clear()
            if attempt == 2:
                return _error(
                    503, f"the embedding model did not answer: {type(exc).__name__}", "server_error"
                )
    tokens = result["prompt_tokens"]
    entry = {
        "deployment": EMBEDDING_MODEL,
        "endpoint": "embeddings",
        "request_id": uuid.uuid4().hex,
        "prompt_tokens": tokens,
        "completion_tokens": 0,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "status": "ok",
    }
    await run_in_threadpool(_record_usage, call, project_id, entry)
    return {
        "object": "list",
        "model": EMBEDDING_MODEL,
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(v, request.encoding_format)}
            for i, v in enumerate(result["vectors"])
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


_embedder: list[Any] = []  # the embedding app's handle, once made


def _embedding_handle(call: Call) -> Any:
    if not _embedder:
        connect(call.settings)
        _embedder.append(embedding_handle())
    return _embedder[0]


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    """``base64`` (what the openai client asks for by default) is little-endian float32 bytes."""
    if encoding == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


@router.get("/projects/{project}/llm/usage", summary="LLM usage per deployment: tokens, latency, TTFT")
def usage(
    project: Name,
    call: CallDep,
    hours: float = Query(24, gt=0, le=24 * 366, description="Look back this many hours."),
    deployment: str | None = Query(None, description="Only this deployment."),
) -> list[dict[str, Any]]:
    since = datetime.now(UTC) - timedelta(hours=hours)
    with call.tx() as ctx:
        project_row = ctx.project(project, Role.viewer)
        query = select(LLMUsage).where(LLMUsage.project_id == project_row.id, LLMUsage.at >= since)
        if deployment:
            query = query.where(LLMUsage.deployment == deployment)
        rows = ctx.session.scalars(query).all()
    groups: dict[str, list[LLMUsage]] = {}
    for row in rows:
        groups.setdefault(row.deployment, []).append(row)
    out = []
    for name, items in sorted(groups.items()):
        latencies = np.array([r.latency_ms for r in items])
        ttfts = np.array([r.ttft_ms for r in items if r.ttft_ms is not None])
        out.append(
            {
                "deployment": name,
                "requests": len(items),
                "errors": sum(r.status == "error" for r in items),
                "cancelled": sum(r.status == "cancelled" for r in items),
                "prompt_tokens": sum(r.prompt_tokens for r in items),
                "completion_tokens": sum(r.completion_tokens for r in items),
                "latency_p50_ms": float(np.percentile(latencies, 50)),
                "latency_p99_ms": float(np.percentile(latencies, 99)),
                "ttft_p50_ms": float(np.percentile(ttfts, 50)) if len(ttfts) else None,
                "ttft_p99_ms": float(np.percentile(ttfts, 99)) if len(ttfts) else None,
            }
        )
    return out


router.include_router(openai)

dataplane = APIRouter(tags=["openai"])
"""The same OpenAI-compatible routes as the data plane serves them, under ``/{project}/openai/v1``."""
for _route in openai.routes:
    dataplane.add_api_route(
        "/openai/v1" + _route.path.removeprefix(openai.prefix),
        _route.endpoint,
        methods=list(_route.methods),
        summary=_route.summary,
    )
router.include_router(gateway_router)
router.include_router(assistant_router)
