"""The data plane's prediction routes (mounted under ``/{project}`` by the data-plane app).

A deployment the caller's project does not have is the same 404 whether it exists in
another project or not: the lookup is by (project, name) in the routing table.
"""

from __future__ import annotations

import random
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from kosmos.deployment import predictions
from kosmos.deployment.dataplane import Route
from kosmos.deployment.decisions import model_record
from kosmos.deployment.feature_join import BadRows, FeatureJoin, Joined, UnknownEntities
from kosmos.deployment.serving import (
    MAX_ROWS,
    call_version,
    invalid_answer,
    problem,
    request_rows,
    unknown_answer,
)
from kosmos.platform.api import Call, CallDep
from kosmos.platform.errors import InvalidInput, KosmosError, NotFound
from kosmos.platform.identity.names import Name
from kosmos.platform.logs import request_id_var

router = APIRouter(tags=["predict"])
_joins: dict[tuple[str, str], FeatureJoin] = {}


def _route(request: Request, project: str, name: str) -> Route:
    route = request.app.state.routes.get(project, name)
    if route is None:
        raise NotFound(f"deployment {name!r} not found in project {project!r}")
    if route.kind != "model":
        raise InvalidInput.field(
            "deployment", f"{name!r} is an LLM deployment: call /{project}/openai/v1/chat/completions"
        )
    return route


def _join(request: Request, route: Route) -> FeatureJoin:
    key = (route.app, route.feature_service or "")
    join = _joins.get(key)
    if join is None:
        handles = request.app.state.handles
        columns: set[str] = set()

        async def model_columns() -> set[str]:
            if not columns and route.direct_version is not None:
                info = await handles.model(route.app, route.direct_version).describe.remote()
                columns.update(info["inputs"])
            return columns

        join = _joins[key] = FeatureJoin(
            request.app.state.settings, route.project, route.feature_service, model_columns
        )
    return join


async def _predict(request: Request, route: Route, body: Any, call: Call) -> dict[str, Any]:
    """One version serving: straight to its replica; a rollout: through the traffic router."""
    handles = request.app.state.handles
    caller = call.principal.user_name
    if route.direct_version is None:
        if isinstance(body, dict) and not body.get("request_id"):
            body = {**body, "request_id": request_id_var.get()}
        try:
            return await handles.router(route.app).predict.remote(body, caller)
        except Exception:
            handles.forget(route.app)
            raise
    at = time.time()
    request_id, rows = request_rows(body, request_id_var.get())
    if isinstance(rows, dict):
        return rows
    received = [dict(r) for r in rows]  # as received: the join adds features and drops entity keys
    joined = Joined()
    if route.feature_service:
        join = _join(request, route)
        join.missing_entities = route.missing_entities  # the spec may have changed since it was made
        try:
            joined = await join(rows)
        except BadRows as exc:
            return invalid_answer(request_id, exc.problems)
        except UnknownEntities as exc:
            return unknown_answer(request_id, exc.problems)
        except (KosmosError, ValueError, TypeError) as exc:
            return invalid_answer(request_id, [problem("features", str(exc))])
    version = route.direct_version
    out, ms, ok = await call_version(lambda v: handles.model(route.app, v), version, rows, request_id)
    if ok is not None:
        request.app.state.recorder.add(route.app, version, ms, ok)
        if ok is False or random.random() < route.log_sample_rate:
            traffic = {"arm": "stable", "weights": {str(version): 100}}
            request.app.state.decisions.add(
                model_record(
                    route.source,
                    request_id=request_id,
                    body=body,
                    caller=caller,
                    received=received,
                    features=joined.provenance(),
                    out=out,
                    latency_ms=ms,
                    traffic=traffic,
                    shadow_version=None,
                    at=at,
                    imputed=joined.imputed,
                )
            )
    if ok is False:
        handles.forget(route.app)
    return out


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise InvalidInput.field("body", f"malformed JSON: {exc}") from None


@router.post(
    "/{name}/predict",
    summary="Predict: {'inputs': [{field: value, ...}, ...]}",
    openapi_extra=predictions.body_schema(MAX_ROWS),
)
async def predict(project: Name, name: Name, request: Request, call: CallDep) -> JSONResponse:
    route = _route(request, project, name)
    return predictions.answer(await _predict(request, route, await _body(request), call))


@router.post(
    "/{name}/predict/batch",
    summary="Predict many rows: split into chunks, run concurrently",
    openapi_extra=predictions.body_schema(predictions.MAX_BATCH_ROWS),
)
async def predict_batch(project: Name, name: Name, request: Request, call: CallDep) -> JSONResponse:
    route = _route(request, project, name)
    body = await _body(request)
    if not isinstance(body, dict):
        raise InvalidInput.field("inputs", "give a JSON object with a non-empty list of rows")
    if not body.get("request_id"):
        body = {**body, "request_id": request_id_var.get()}
    return await predictions.predict_batch(body, lambda chunk: _predict(request, route, chunk, call))
