"""REST for the gateway: the project's policy, the semantic cache, prompts and outcomes.

Every route is under ``/projects/{project}``, so the platform's authorization applies:
viewers read and flag, developers register prompts and invalidate, maintainers change
aliases, splits, thresholds and the policy, and flush.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from kosmos.genai.cache_stats import summarize
from kosmos.genai.gateway import Gateway, Policy
from kosmos.genai.models_db import LLMUsage
from kosmos.platform.api import Call, CallDep, requires
from kosmos.platform.api.schemas import MAX_ROW_ID, RowId
from kosmos.platform.db.models import Role
from kosmos.platform.errors import InvalidInput, NotFound
from kosmos.platform.identity.names import Name

router = APIRouter(prefix="/projects/{project}", tags=["gateway"])
HOURS = Query(24, gt=0, le=24 * 366, description="Look back this many hours.")


def _gateway(call: Call) -> Gateway:
    from kosmos.genai.api import gateway_of

    return gateway_of(call)


def _project(call: Call, project: str, role: Role) -> int:
    with call.tx() as ctx:
        return ctx.project(project, role).id


def _audit(call: Call, project: str, action: str, name: str, details: dict[str, Any]) -> None:
    with call.tx() as ctx:
        ctx.audit(action, action.split(".")[0], name, project=project, details=details)


# -- policy -----------------------------------------------------------------------------
@router.get("/gateway", summary="The project's gateway policy, and the values in force")
def get_policy(project: Name, call: CallDep) -> dict[str, Any]:
    gateway = _gateway(call)
    project_id = _project(call, project, Role.viewer)
    effective = gateway.effective(project_id)
    return {
        "policy": gateway.stored_policy(project_id).model_dump(exclude_none=True),
        "effective": vars(effective),
    }


@router.put(
    "/gateway",
    dependencies=[requires(Role.maintainer)],
    summary="Set the project's gateway policy (maintainer)",
)
def put_policy(project: Name, policy: Policy, call: CallDep) -> dict[str, Any]:
    gateway = _gateway(call)
    with call.tx() as ctx:
        project_id = ctx.project(project, Role.maintainer).id
        gateway.save_policy(ctx.session, project_id, policy)
        ctx.audit(
            "gateway.policy",
            "gateway",
            project,
            project=project,
            details=policy.model_dump(exclude_none=True),
        )
    return get_policy(project, call)


# -- cache ------------------------------------------------------------------------------
@router.get(
    "/cache/stats", summary="Semantic cache: hit rate, estimated false hits, tokens and latency saved"
)
def cache_stats(project: Name, call: CallDep, hours: float = HOURS) -> dict[str, Any]:
    gateway = _gateway(call)
    since = datetime.now(UTC) - timedelta(hours=hours)
    project_id, rows = _usage(call, project, since)
    events = gateway.cache.events(project_id, since)
    spaces = gateway.cache.namespaces(project_id)
    return {
        "hours": hours,
        **summarize(rows, events, gateway.effective(project_id).cache["max_false_hit_rate"]),
        "invalidated": events["invalidated"],
        "evicted": events["evicted"],
        "namespaces": len(spaces),
        "entries": sum(s["entries"] for s in spaces),
    }


def _usage(call: Call, project: str, since: datetime) -> tuple[int, list[Any]]:
    with call.tx() as ctx:
        project_id = ctx.project(project, Role.viewer).id
        rows = ctx.session.execute(
            select(
                LLMUsage.cache, LLMUsage.latency_ms, LLMUsage.tokens_saved, LLMUsage.cache_namespace,
                LLMUsage.prompt_tokens, LLMUsage.completion_tokens,
            ).where(LLMUsage.project_id == project_id, LLMUsage.at >= since, LLMUsage.cache.is_not(None))
        ).all()  # fmt: skip
    return project_id, rows


@router.get(
    "/cache/namespaces",
    summary="The project's cache namespaces (partitions): entries, threshold and what each did",
)
def cache_namespaces(project: Name, call: CallDep, hours: float = HOURS) -> list[dict[str, Any]]:
    gateway = _gateway(call)
    since = datetime.now(UTC) - timedelta(hours=hours)
    project_id, rows = _usage(call, project, since)
    events = gateway.cache.events_by_namespace(project_id, since)
    by_space: dict[int, list[Any]] = {}
    for row in rows:
        if row.cache_namespace is not None:
            by_space.setdefault(row.cache_namespace, []).append(row)
    spaces = gateway.cache.namespaces(project_id)
    bound = gateway.effective(project_id).cache["max_false_hit_rate"]
    return [
        {**space, "stats": summarize(by_space.get(space["id"], []), events.get(space["id"]), bound)}
        for space in spaces
    ]


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(gt=0, le=1, description="Cosine similarity a candidate must reach.")


@router.put(
    "/cache/namespaces/{namespace}",
    dependencies=[requires(Role.maintainer)],
    summary="Set a namespace's similarity threshold (maintainer)",
)
def set_threshold(project: Name, namespace: RowId, body: ThresholdIn, call: CallDep) -> dict[str, Any]:
    project_id = _project(call, project, Role.maintainer)
    if not _gateway(call).cache.set_threshold(project_id, namespace, body.threshold):
        raise NotFound(f"cache namespace {namespace} does not exist in project {project!r}")
    _audit(call, project, "cache.threshold", str(namespace), {"threshold": body.threshold})
    return {"namespace": namespace, "threshold": body.threshold}


class InvalidateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entry: RowId | None = Field(None, description="One entry.")
    namespace: RowId | None = Field(None, description="One namespace.")
    model: str | None = Field(None, description="Every namespace of this model.")
    prompt: str | None = Field(None, description="Every namespace that used this prompt.")
    reason: str = Field("invalidated by hand", max_length=400, description="Recorded with the event.")


@router.post(
    "/cache/invalidate",
    dependencies=[requires(Role.developer)],
    summary="Drop cache entries: one entry, a namespace, a model or a prompt",
)
def invalidate(project: Name, body: InvalidateIn, call: CallDep) -> dict[str, Any]:
    chosen = [k for k in ("entry", "namespace", "model", "prompt") if getattr(body, k) is not None]
    if len(chosen) != 1:
        raise InvalidInput("name exactly one of entry, namespace, model or prompt (or use cache/flush)")
    project_id = _project(call, project, Role.developer)
    cache, actor = _gateway(call).cache, call.principal.user_name
    if body.entry is not None:
        if not cache.drop_entry(project_id, body.entry, actor, "invalidated", body.reason):
            raise NotFound(f"cache entry {body.entry} does not exist in project {project!r}")
        dropped = 1
    else:
        dropped = cache.invalidate(
            project_id, actor, body.reason, namespace=body.namespace, model=body.model, prompt=body.prompt
        )
    _audit(
        call,
        project,
        "cache.invalidate",
        chosen[0],
        {**body.model_dump(exclude_none=True), "entries": dropped},
    )
    return {"invalidated": dropped}


@router.post(
    "/cache/flush",
    dependencies=[requires(Role.maintainer)],
    summary="Drop every cache entry of the project (maintainer)",
)
def flush(project: Name, call: CallDep) -> dict[str, Any]:
    project_id = _project(call, project, Role.maintainer)
    dropped = _gateway(call).cache.invalidate(project_id, call.principal.user_name, "flushed")
    _audit(call, project, "cache.flush", project, {"entries": dropped})
    return {"invalidated": dropped}


class FlagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("wrong answer", min_length=1, max_length=400, description="What was wrong with it.")


@router.post(
    "/cache/entries/{entry}/flag", summary="Flag a cached answer as wrong: it is dropped and counted"
)
def flag(project: Name, entry: RowId, body: FlagIn, call: CallDep) -> dict[str, Any]:
    project_id = _project(call, project, Role.viewer)
    if not _gateway(call).cache.drop_entry(
        project_id, entry, call.principal.user_name, "flagged", body.reason
    ):
        raise NotFound(f"cache entry {entry} does not exist in project {project!r}")
    _audit(call, project, "cache.flag", str(entry), {"reason": body.reason})
    return {"flagged": entry}


# -- outcomes ---------------------------------------------------------------------------
class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["success", "failure"] = Field(description="How the answer served the application.")


@router.post("/llm/requests/{request_id}/outcome", summary="Report how a call's answer worked out")
def report_outcome(project: Name, request_id: str, body: OutcomeIn, call: CallDep) -> dict[str, Any]:
    # a call's usage row is written off its path, within gateway.usage_flush_seconds: an outcome
    # reported as soon as the answer arrives waits for it rather than calling the request unknown
    deadline = time.monotonic() + 2 * call.settings.gateway.usage_flush_seconds + 2
    while True:
        with call.tx() as ctx:
            project_id = ctx.project(project, Role.viewer).id
            row = ctx.session.scalar(
                select(LLMUsage).where(
                    LLMUsage.project_id == project_id,
                    LLMUsage.request_id == request_id,
                    LLMUsage.cache.is_distinct_from("audit"),  # the audit of a hit shares its id
                )
            )
            if row is not None:
                row.outcome = body.outcome
                return {"request_id": request_id, "outcome": body.outcome}
        if time.monotonic() > deadline:
            raise NotFound(f"request {request_id!r} does not exist in project {project!r}")
        time.sleep(0.1)


# -- prompts ----------------------------------------------------------------------------
class PromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field(description="The prompt's name in the project (a Kosmos name: a lowercase slug).")
    template: str | list[dict[str, Any]] = Field(description="Text with {{variables}}, or chat messages.")
    commit_message: str = Field(min_length=1, max_length=500, description="What changed in this version.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form tags.")


@router.get("/prompts", summary="The project's prompts (MLflow prompt registry)")
async def list_prompts(project: Name, call: CallDep) -> list[dict[str, Any]]:
    await run_in_threadpool(_project, call, project, Role.viewer)
    return await run_in_threadpool(_gateway(call).prompts.list, project)


@router.post(
    "/prompts",
    dependencies=[requires(Role.developer)],
    status_code=201,
    summary="Register a prompt version (developer)",
)
async def register_prompt(project: Name, body: PromptIn, call: CallDep) -> dict[str, Any]:
    await run_in_threadpool(_project, call, project, Role.developer)
    version = await run_in_threadpool(
        _gateway(call).prompts.register, project, body.name, body.template, body.commit_message, body.tags
    )
    details = {"version": version["version"], "commit_message": body.commit_message}
    await run_in_threadpool(_audit, call, project, "prompt.register", body.name, details)
    return version


@router.get("/prompts/{name}", summary="A prompt's versions, aliases and splits")
async def show_prompt(project: Name, name: Name, call: CallDep) -> dict[str, Any]:
    await run_in_threadpool(_project, call, project, Role.viewer)
    return await run_in_threadpool(_gateway(call).prompts.show, project, name)


@router.get("/prompts/{name}/diff", summary="A unified diff between two versions")
async def diff_prompt(
    project: Name,
    name: Name,
    call: CallDep,
    a: int = Query(..., ge=1, le=MAX_ROW_ID),
    b: int = Query(..., ge=1, le=MAX_ROW_ID),
) -> dict[str, Any]:
    await run_in_threadpool(_project, call, project, Role.viewer)
    return {
        "name": name,
        "a": a,
        "b": b,
        "diff": await run_in_threadpool(_gateway(call).prompts.diff, project, name, a, b),
    }


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_ROW_ID, description="The version the alias points at.")


@router.put(
    "/prompts/{name}/aliases/{alias}",
    dependencies=[requires(Role.maintainer)],
    summary="Point an alias at a version (maintainer)",
)
async def set_alias(project: Name, name: Name, alias: Name, body: AliasIn, call: CallDep) -> dict[str, Any]:
    project_id = await run_in_threadpool(_project, call, project, Role.maintainer)
    gateway = _gateway(call)
    before = await run_in_threadpool(gateway.prompts.set_alias, project, name, alias, body.version)
    dropped = 0
    if before is not None and before != body.version:  # answers made with the old version must go
        dropped = await run_in_threadpool(
            gateway.cache.invalidate, project_id, call.principal.user_name,
            f"prompt {name}@{alias} moved from version {before} to {body.version}", prompt=name,
        )  # fmt: skip
    details = {"alias": alias, "version": body.version, "previous": before, "cache_invalidated": dropped}
    await run_in_threadpool(_audit, call, project, "prompt.alias", name, details)
    return {
        "name": name,
        "alias": alias,
        "version": body.version,
        "previous": before,
        "cache_invalidated": dropped,
    }


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_ROW_ID, description="The challenger version.")
    weight: float = Field(gt=0, lt=1, description="Share of the alias's traffic the challenger gets.")


@router.put(
    "/prompts/{name}/splits/{alias}",
    dependencies=[requires(Role.maintainer)],
    summary="A/B split: send a share of alias traffic to a version",
)
async def set_split(project: Name, name: Name, alias: Name, body: SplitIn, call: CallDep) -> dict[str, Any]:
    await run_in_threadpool(_project, call, project, Role.maintainer)
    await run_in_threadpool(_gateway(call).prompts.set_split, project, name, alias, body.version, body.weight)
    await run_in_threadpool(
        _audit, call, project, "prompt.split", name, {"alias": alias, **body.model_dump()}
    )
    return {"name": name, "alias": alias, **body.model_dump()}


@router.delete(
    "/prompts/{name}/splits/{alias}", dependencies=[requires(Role.maintainer)], summary="End an A/B split"
)
async def end_split(project: Name, name: Name, alias: Name, call: CallDep) -> dict[str, Any]:
    await run_in_threadpool(_project, call, project, Role.maintainer)
    await run_in_threadpool(_gateway(call).prompts.set_split, project, name, alias, None, 0.0)
    await run_in_threadpool(_audit, call, project, "prompt.split", name, {"alias": alias, "ended": True})
    return {"name": name, "alias": alias, "ended": True}


@router.get("/prompts/{name}/ab", summary="Per-version results: requests, outcomes, latency, tokens")
def ab_results(
    project: Name, name: Name, call: CallDep, hours: float = Query(24 * 7, gt=0, le=24 * 366)
) -> list[dict[str, Any]]:
    since = datetime.now(UTC) - timedelta(hours=hours)
    with call.tx() as ctx:
        project_id = ctx.project(project, Role.viewer).id
        rows = ctx.session.scalars(
            select(LLMUsage).where(
                LLMUsage.project_id == project_id, LLMUsage.at >= since, LLMUsage.prompt.like(f"{name}/%")
            )
        ).all()
    groups: dict[int, list[LLMUsage]] = {}
    for row in rows:
        groups.setdefault(int((row.prompt or "/0").rsplit("/", 1)[1]), []).append(row)
    out = []
    for version, items in sorted(groups.items()):
        good = sum(r.outcome == "success" for r in items)
        bad = sum(r.outcome == "failure" for r in items)
        out.append(
            {
                "version": version,
                "requests": len(items),
                "successes": good,
                "failures": bad,
                "success_rate": good / (good + bad) if good + bad else None,
                "latency_p50_ms": float(np.percentile([r.latency_ms for r in items], 50)),
                "completion_tokens": sum(r.completion_tokens for r in items),
            }
        )
    return out


class RenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(
        None, ge=1, le=MAX_ROW_ID, description="A version (default: the alias, else the latest)."
    )
    alias: str | None = Field(None, description="An alias such as production.")
    variables: dict[str, str | int | float] = Field(
        default_factory=dict, description="The template's variables."
    )


@router.post(
    "/prompts/{name}/render", summary="Fill a version's template (a missing or extra variable is 422)"
)
async def render_prompt(project: Name, name: Name, body: RenderIn, call: CallDep) -> dict[str, Any]:
    from kosmos.genai.prompts import render

    await run_in_threadpool(_project, call, project, Role.viewer)
    pv = await run_in_threadpool(_gateway(call).prompts.version, project, name, body.version, body.alias)
    rendered = render(pv.template, {k: str(v) for k, v in body.variables.items()}, f"{name}/{pv.version}")
    return {"name": name, "version": int(pv.version), "rendered": rendered}
