"""REST routes of deployments: desired state, rollouts, live statistics, and online inference."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kosmos.deployment import decisions, predictions, service
from kosmos.deployment.rollouts import app_name
from kosmos.deployment.spec import Autoscaling, DeploymentSpec, Strategy
from kosmos.platform.api import Call, CallDep, requires
from kosmos.platform.db.models import Role
from kosmos.platform.errors import InvalidInput, NotFound, ServiceUnavailable
from kosmos.platform.identity.names import Name
from kosmos.platform.logs import request_id_var
from kosmos.platform.ray_cluster import connect

router = APIRouter(prefix="/projects/{project}/deployments", tags=["deployment"])


class CreateBody(DeploymentSpec):
    name: Name = Field(description="Deployment name, unique in the project.")


class RolloutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(description="The model version (number or alias) to roll out.")
    strategy: Strategy | None = Field(None, description="Override the spec's rollout strategy once.")


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000, description="Why; kept in the audit log.")


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(description="The model version (number or alias) to decide the recorded traffic.")
    since: AwareDatetime | None = Field(
        None, description="Replay requests from this time (with a time zone)."
    )
    until: AwareDatetime | None = Field(None, description="... up to this time (exclusive).")
    limit: int = Field(20_000, ge=1, le=20_000, description="Most requests replayed, oldest first.")


class ScaleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replicas: int | None = Field(None, ge=1, le=100, description="A fixed number of replicas per version.")
    autoscaling: Autoscaling | None = Field(None, description="Or autoscaling bounds.")


@router.post(
    "",
    dependencies=[requires(Role.developer)],
    summary="Create a deployment (the reconciler starts it)",
    status_code=201,
)
def create(project: Name, body: CreateBody, call: CallDep) -> dict[str, Any]:
    spec = DeploymentSpec.model_validate(body.model_dump(exclude={"name"}))
    with call.tx() as ctx:
        return service.create(ctx, call.settings, project, body.name, spec)


@router.get("", summary="Deployments of the project with status and traffic")
def list_deployments(project: Name, call: CallDep) -> list[dict[str, Any]]:
    with call.tx() as ctx:
        return service.list_(ctx, project)


@router.get("/{name}", summary="One deployment: spec, versions, traffic, status and reason")
def get(project: Name, name: Name, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        return service.get(ctx, project, name)


@router.post(
    "/{name}/rollout",
    dependencies=[requires(Role.developer)],
    summary="Roll out another model version (canary, shadow, ...)",
)
def rollout(project: Name, name: Name, body: RolloutBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        return service.rollout(ctx, call.settings, project, name, body.version, body.strategy)


@router.post(
    "/{name}/promote",
    dependencies=[requires(Role.developer)],
    summary="Give the rolled-out version all traffic now",
)
def promote(project: Name, name: Name, body: ReasonBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        return service.promote(ctx, call.settings, project, name, body.reason)


@router.post(
    "/{name}/rollback",
    dependencies=[requires(Role.developer)],
    summary="Drop the rolled-out version, or return to the previous one",
)
def rollback(project: Name, name: Name, body: ReasonBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        return service.rollback(ctx, call.settings, project, name, body.reason)


@router.post(
    "/{name}/replay",
    dependencies=[requires(Role.developer)],
    summary="What a version would have decided on recorded traffic",
)
def replay_window(project: Name, name: Name, body: ReplayBody, call: CallDep) -> dict[str, Any]:
    from kosmos.deployment.batch_replay import replay_window

    with call.tx() as ctx:
        return replay_window(
            ctx, call.settings, project, name, body.version, body.since, body.until, body.limit
        )


@router.post(
    "/{name}/scale", dependencies=[requires(Role.developer)], summary="Change replicas or autoscaling bounds"
)
def scale(project: Name, name: Name, body: ScaleBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        return service.scale(ctx, project, name, replicas=body.replicas, autoscaling=body.autoscaling)


@router.delete(
    "/{name}",
    dependencies=[requires(Role.maintainer)],
    summary="Delete a deployment (the reconciler removes it)",
    status_code=204,
)
def delete(project: Name, name: Name, call: CallDep) -> Response:
    with call.tx() as ctx:
        service.delete(ctx, project, name)
    return Response(status_code=204)


@router.get("/{name}/logs", summary="The newest decision records, one line each, newest last")
def logs(project: Name, name: Name, call: CallDep, limit: int = Query(50, ge=1, le=1000)) -> list[dict]:
    with call.tx() as ctx:
        record = service.require_viewer(ctx, project, name)
        rows = decisions.window(ctx.session, record.project_id, name, limit=limit, newest_first=True)
        return [decisions.log_line(row) for row in reversed(rows)]


@router.get("/{name}/events", summary="The deployment's history, newest first (viewer+)")
def events(project: Name, name: Name, call: CallDep, limit: int = Query(200, ge=1, le=1000)) -> list[dict]:
    with call.tx() as ctx:
        return service.events(ctx, project, name, limit)


_handles: dict[str, Any] = {}


def app_handle(call: Call, project: str, name: str) -> Any:
    """A cached handle on a deployment's Serve application (blocking: call it in a thread).

    NotFound when the project has no such deployment record (the record, not a Serve app name,
    says what exists) or Serve has no application for it; ``forget_handle`` after a failed call.
    """
    with call.tx() as ctx:
        service.require_viewer(ctx, project, name)
    app = app_name(project, name)
    handle = _handles.get(app)
    if handle is None:
        from ray import serve
        from ray.serve.exceptions import RayServeException

        connect(call.settings)
        try:
            handle = serve.get_app_handle(app)
        except RayServeException:
            raise NotFound(f"deployment {name!r} of project {project!r} is not running") from None
        _handles[app] = handle
    return handle


def forget_handle(project: str, name: str) -> None:
    _handles.pop(app_name(project, name), None)


async def _call(call: Call, project: str, name: str, method: str, *args: Any) -> Any:
    try:
        handle = await run_in_threadpool(app_handle, call, project, name)
        return await getattr(handle, method).remote(*args)
    except (NotFound, ServiceUnavailable):
        raise
    except Exception as exc:
        forget_handle(project, name)
        raise ServiceUnavailable(f"deployment {name!r} did not answer: {type(exc).__name__}") from exc


@router.get("/{name}/stats", summary="Live per-version requests, error rate and latency")
async def stats(
    project: Name,
    name: Name,
    call: CallDep,
    since: Annotated[float, Query(ge=0)] = 0.0,
    bucket_s: Annotated[float, Query(ge=0, le=86400)] = 0.0,
) -> dict[str, Any]:
    """Since ``since`` (epoch seconds); ``bucket_s`` > 0 adds each version's figures per bucket."""
    if 0 < bucket_s < 1:
        raise InvalidInput.field("bucket_s", "give 0 (no series) or at least 1 second")
    return await _call(call, project, name, "stats", since, *([bucket_s] if bucket_s else []))


@router.post("/{name}/predict", summary="Predict: {'inputs': [{field: value, ...}, ...]}")
async def predict(project: Name, name: Name, body: dict[str, Any], call: CallDep) -> JSONResponse:
    body = {**body, "request_id": body.get("request_id") or request_id_var.get()}
    return predictions.answer(await _call(call, project, name, "predict", body, call.principal.user_name))


@router.post("/{name}/predict/batch", summary="Predict many rows: split into chunks, run concurrently")
async def predict_batch(project: Name, name: Name, body: dict[str, Any], call: CallDep) -> JSONResponse:
    body = {**body, "request_id": body.get("request_id") or request_id_var.get()}
    caller = call.principal.user_name
    return await predictions.predict_batch(
        body, lambda chunk: _call(call, project, name, "predict", chunk, caller)
    )
