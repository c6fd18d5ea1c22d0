"""The OpenAI-compatible API of a project's LLM deployments, and their usage.

Base URL for OpenAI clients: ``{control plane}/api/v1/projects/{project}/openai/v1``, with a
Kosmos token as the API key; ``model`` is the LLM deployment's name. The project in the
path is what the platform authorizes, so a token never reaches another project's models.
"""

from __future__ import annotations

import asyncio
import base64
import json
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
from kosmos.genai.embeddings import DIMENSIONS, EMBEDDING_MODEL, embedding_handle
from kosmos.genai.models_db import LLMUsage
from kosmos.genai.serving import invalid
from kosmos.platform.api import Call, CallDep
from kosmos.platform.db.models import Role
from kosmos.platform.errors import NotFound
from kosmos.platform.identity.names import Name
from kosmos.platform.ray_cluster import connect

router = APIRouter(tags=["llm"])
_pending: set[asyncio.Task[None]] = set()  # usage records being written after a disconnect
openai = APIRouter(prefix="/projects/{project}/openai/v1", tags=["openai"])


def _error(
    status: int, message: str, type_: str, code: str | None = None, param: str | None = None
) -> JSONResponse:
    return JSONResponse(protocol.error_body(message, type_, code, param), status_code=status)


def _llm_records(ctx: Any, project_id: int) -> list[DeploymentRecord]:
    records = ctx.session.scalars(select(DeploymentRecord).where(DeploymentRecord.project_id == project_id))
    return [r for r in records if (r.spec or {}).get("llm") is not None]


def _llm_deployments(call: Call, project: str) -> list[DeploymentRecord]:
    with call.tx() as ctx:
        return _llm_records(ctx, ctx.project(project, Role.viewer).id)


def _lookup(call: Call, project: str, name: str) -> tuple[int, DeploymentRecord | None, list[str]]:
    """The project's id and its LLM deployment ``name``; when there is none, the names there are."""
    with call.tx() as ctx:
        project_id = ctx.project(project, Role.viewer).id
        record = ctx.session.scalar(
            select(DeploymentRecord).where(
                DeploymentRecord.project_id == project_id, DeploymentRecord.name == name
            )
        )
        if record is not None and (record.spec or {}).get("llm") is not None:
            return project_id, record, []
        return project_id, None, sorted(r.name for r in _llm_records(ctx, project_id))


def _project_id(call: Call, project: str) -> int:
    with call.tx() as ctx:
        return ctx.project(project, Role.viewer).id


@openai.get("/models", summary="The project's LLM deployments, as OpenAI models")
def list_models(project: Name, call: CallDep) -> dict[str, Any]:
    data = [
        {"id": r.name, "object": "model", "created": int(r.created_at.timestamp()), "owned_by": project}
        for r in _llm_deployments(call, project)
    ]
    data.append({"id": EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "kosmos"})
    return {"object": "list", "data": data}


def _record_usage(call: Call, project_id: int, entry: dict[str, Any]) -> None:
    """One usage row (the caller was authorized on the project when the request began)."""
    with call.tx() as ctx:
        ctx.session.add(LLMUsage(project_id=project_id, actor=call.principal.user_name, **entry))


async def _generate(call: Call, project: str, body: dict[str, Any], kind: str) -> Any:
    model = protocol.ChatCompletionRequest if kind == "chat" else protocol.CompletionRequest
    try:
        request = model(**body)
    except (ValidationError, ValueError) as exc:
        error = invalid(exc)
        return JSONResponse(error.body, status_code=error.status)
    project_id, record, names = await run_in_threadpool(_lookup, call, project, request.model)
    if record is None:
        return _error(
            404,
            f"the model {request.model!r} does not exist in project {project!r}; "
            f"LLM deployments: {', '.join(names) or 'none'}",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    started = time.perf_counter()
    request_id = uuid.uuid4().hex
    entry: dict[str, Any] = {"deployment": request.model, "endpoint": kind, "request_id": request_id}
    for attempt in (1, 2):  # nothing was generated yet, so a stale handle may be retried once
        try:
            handle = await run_in_threadpool(app_handle, call, project, request.model)
            responses = handle.options(stream=True).generate.remote(body, kind)
            first = await anext(responses.__aiter__())
            break
        except NotFound:
            return _error(
                503,
                f"{request.model!r} is not serving yet ({record.status}: {record.reason})",
                "server_error",
            )
        except Exception as exc:
            forget_handle(project, request.model)
            if attempt == 2:
                return _error(503, f"{request.model!r} did not answer: {type(exc).__name__}", "server_error")
    if "error" in first:
        return JSONResponse(first["error"], status_code=first.get("status", 500))
    if request.stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _sse(call, project_id, responses, first, entry, started, include_usage),
            media_type="text/event-stream",
            headers={"X-Request-Id": request_id},
        )
    chunks = [first] + [item async for item in responses]
    final = chunks[-1]
    await run_in_threadpool(_record_usage, call, project_id, _usage_entry(entry, final, started, "ok"))
    if "error" in final:
        return JSONResponse(final["error"], status_code=final.get("status", 503))
    text = "".join(_text(c, kind) for c in chunks[:-1])
    finish = chunks[-2]["choices"][0]["finish_reason"]
    u = final["usage"]
    if kind == "chat":
        out = protocol.chat_response(
            first["id"], request.model, text, finish, u["prompt_tokens"], u["completion_tokens"]
        )
    else:
        out = {
            **protocol.completion_chunk(first["id"], request.model, first["created"], text, finish),
            "usage": u,
        }
    return JSONResponse(out, headers={"X-Request-Id": request_id})


def _text(chunk: dict[str, Any], kind: str) -> str:
    choice = chunk["choices"][0]
    return (choice["delta"].get("content") or "") if kind == "chat" else choice["text"]


def _usage_entry(entry: dict[str, Any], final: dict[str, Any], started: float, status: str) -> dict[str, Any]:
    u = final.get("usage") or {}
    return {
        **entry,
        "model_version": final.get("model_version"),
        "prompt_tokens": u.get("prompt_tokens", 0),
        "completion_tokens": u.get("completion_tokens", 0),
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "ttft_ms": final.get("ttft_ms"),
        "status": "error" if "error" in final else status,
    }


async def _sse(
    call: Call,
    project_id: int,
    responses: Any,
    first: dict[str, Any],
    entry: dict[str, Any],
    started: float,
    include_usage: bool,
) -> AsyncIterator[str]:
    final: dict[str, Any] = {}
    status = "cancelled"
    try:
        yield f"data: {json.dumps(first)}\n\n"
        async for item in responses:
            if "usage" in item or "error" in item:
                final = item
                break
            yield f"data: {json.dumps(item)}\n\n"
        if "error" in final:
            yield f"data: {json.dumps(final['error'])}\n\n"
        elif include_usage:
            yield f"data: {json.dumps({**_shell(first), 'choices': [], 'usage': final['usage']})}\n\n"
        yield "data: [DONE]\n\n"
        status = "ok"
    finally:
        if status == "cancelled":  # the client disconnected: stop generating for it
            responses.cancel()
        # this task may be cancelled (a disconnect): record in a task of its own, not with an await here
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(_record_usage, call, project_id, _usage_entry(entry, final, started, status))
        )
        _pending.add(task)
        task.add_done_callback(_pending.discard)


def _shell(chunk: dict[str, Any]) -> dict[str, Any]:
    return {k: chunk[k] for k in ("id", "object", "created", "model")}


@openai.post("/chat/completions", summary="OpenAI chat completions (streaming with stream: true)")
async def chat_completions(project: Name, body: dict[str, Any], call: CallDep) -> Any:
    return await _generate(call, project, body, "chat")


@openai.post("/completions", summary="OpenAI text completions (streaming with stream: true)")
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
    entry = {"deployment": EMBEDDING_MODEL, "endpoint": "embeddings", "request_id": uuid.uuid4().hex}
    final = {"usage": {"prompt_tokens": tokens, "completion_tokens": 0}}
    await run_in_threadpool(_record_usage, call, project_id, _usage_entry(entry, final, started, "ok"))
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
