"""The Ray cluster the platform trains and serves on: nodes, and whether one is down."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from kosmos.platform.api.deps import CallDep
from kosmos.platform.ray_cluster import cluster_status

router = APIRouter(tags=["platform"])


@router.get("/cluster")
async def read_cluster(call: CallDep) -> dict:
    """Nodes (alive or dead, CPUs, GPUs) and ``healthy`` or ``degraded``; any signed-in user."""
    return await run_in_threadpool(cluster_status, call.settings)
