"""REST routes of decision records (``/api/v1/projects/{project}/decisions``): explain, replay."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from kosmos.deployment import explain, replay
from kosmos.platform.api import CallDep
from kosmos.platform.identity.names import Name

router = APIRouter(prefix="/projects/{project}/decisions", tags=["decisions"])


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    against: str | None = Field(
        "champion",
        max_length=128,
        description="A version or alias to decide the same input too (null: none).",
    )


def _explain(call: Any, project: str, request_id: str) -> dict[str, Any]:
    with call.tx() as ctx:
        return explain.explain(ctx, call.settings, project, request_id)


def _replay(call: Any, project: str, request_id: str, against: str | None) -> dict[str, Any]:
    with call.tx() as ctx:
        return replay.replay(ctx, call.settings, project, request_id, against)


@router.get("/{request_id}", summary="A request's decision record, with the model version's lineage")
async def get(project: Name, request_id: str, call: CallDep) -> dict[str, Any]:
    return await run_in_threadpool(_explain, call, project, request_id)


@router.post("/{request_id}/replay", summary="Recompute a prediction from its record; compare and check skew")
async def replay_decision(project: Name, request_id: str, body: ReplayBody, call: CallDep) -> dict[str, Any]:
    return await run_in_threadpool(_replay, call, project, request_id, body.against or None)
