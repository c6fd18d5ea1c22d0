"""The OpenAI-compatible API of a project's LLM deployments, and their usage.

Base URL for OpenAI clients: ``{control plane}/api/v1/projects/{project}/openai/v1``, with a
Kosmos token as the API key; ``model`` is the LLM deployment's name. The project in the
path is what the platform authorizes, so a token never reaches another project's models.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from kosmos.deployment.models import DeploymentRecord
from kosmos.genai import chat, protocol
from kosmos.genai.assistant.api import router as assistant_router
from kosmos.genai.embeddings import DIMENSIONS, EMBEDDING_MODEL, embedding_handle
from kosmos.genai.gateway import CACHE_HEADER, Gateway
from kosmos.genai.gateway_api import router as gateway_router
from kosmos.genai.models_db import LLMUsage
from kosmos.genai.serving import invalid
from kosmos.platform.api import Call, CallDep
from kosmos.platform.db.models import Role
from kosmos.platform.identity.names import Name
from kosmos.platform.ray_cluster import connect


@asynccontextmanager
async def _usage_flushed_on_shutdown(app: Any) -> AsyncIterator[None]:
    """A clean stop of the app (uvicorn's, or a Serve replica's graceful shutdown) writes every
    usage row and decision record its gateway still holds."""
    yield
    gateway = getattr(app.state, "gateway", None)
    if gateway is not None:
        await asyncio.to_thread(gateway.recorder.close)
        await asyncio.to_thread(gateway.decisions.close)  # and its decision records


router = APIRouter(tags=["llm"], lifespan=_usage_flushed_on_shutdown)
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
    """Queue one usage row (the caller was authorized on the project when the request began)."""
    gateway_of(call).recorder.add(project_id, call.principal.user_name, entry)


async def _generate(call: Call, project: str, body: dict[str, Any], kind: str) -> Any:
    """The gateway's answer (``chat.complete``) as HTTP: JSON, or server-sent events when streamed."""
    header = call.request.headers.get(CACHE_HEADER)
    result = await chat.complete(call, gateway_of(call), project, body, kind, header)
    if isinstance(result, chat.ChatStream):
        return StreamingResponse(
            _sse(result), media_type="text/event-stream", headers=result.outcome.headers()
        )
    return JSONResponse(
        result.body(), status_code=200 if result.ok else result.http_status, headers=result.headers()
    )


async def _sse(stream: chat.ChatStream) -> AsyncIterator[str]:
    chunks = stream.chunks()
    try:
        async for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
    finally:  # a disconnect closes this generator: close the relay too, so it records the call now
        await chunks.aclose()  # type: ignore[attr-defined]


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
                "cache_audits": sum(r.cache == "audit" for r in items),
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

dataplane = APIRouter(tags=["openai"], lifespan=_usage_flushed_on_shutdown)
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
