"""REST routes of the features package, under ``/api/v1/projects/{project}/features``."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kosmos.features import project_tables, runs, serving, stats
from kosmos.features.repo import FeatureRepo, feature_repo
from kosmos.platform.api import MAX_BODY_KEY, Call, CallDep, requires
from kosmos.platform.db.models import Role
from kosmos.platform.errors import InvalidInput
from kosmos.platform.identity.names import Name

router = APIRouter(prefix="/projects/{project}/features", tags=["features"])
dataplane = APIRouter(tags=["features"])
"""What the data plane serves under ``/{project}``: online features, off the control plane."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitBody(_Body):
    template: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="A packaged template by name (an unknown name gets the list).",
    )


class ApplyBody(_Body):
    files: dict[str, str] | None = Field(
        default=None,
        description="The repository's Python files, name to source ({'features.py': '...'}): Feast "
        "definitions and pipeline functions. Left out: apply the files already there again.",
    )


class ScheduleBody(_Body):
    every_minutes: int | None = Field(
        ge=0,
        le=7 * 24 * 60,
        description="Run the pipelines and materialize this often (minutes); 0: only on demand; "
        "null: the platform's default (features.materialize_every_minutes).",
    )


class RunBody(_Body):
    materialize: bool = Field(default=True, description="Also materialize into the online store.")


class OnlineBody(_Body):
    feature_service: str | None = Field(default=None, description="A feature service name.")
    features: list[str] | None = Field(default=None, description="Or 'view:feature' references.")
    entities: dict[str, list[Any]] = Field(description="Join key to values, e.g. {'user_id': [7]}.")
    request_data: dict[str, list[Any]] | None = Field(
        default=None, description="Request-time inputs of on-demand views, e.g. {'amount': [12.5]}."
    )


class TrainingSetBody(_Body):
    feature_service: str | None = Field(default=None, description="A feature service name.")
    features: list[str] | None = Field(default=None, description="Or 'view:feature' references.")
    entity_df: dict[str, list[Any]] = Field(
        description="Columns of the entity frame, all of one length; event_timestamp as ISO times "
        "with a zone."
    )

    @field_validator("entity_df")
    @classmethod
    def _same_length(cls, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"every column needs as many values; got {lengths}")
        return columns


def _repo(call: Call, project: str) -> FeatureRepo:
    return feature_repo(call.settings, project)


@router.get("", summary="Feature views, services and the last pipeline run")
def describe(project: Name, call: CallDep) -> dict[str, Any]:
    # viewer access to {project} is checked by the router-level dependency for every route here
    repo = _repo(call, project)
    return {**repo.describe(), "last_run": runs.last_run(repo)}


@router.post(
    "/init", dependencies=[requires(Role.maintainer)], summary="Create the project's Feast repository"
)
def init(project: Name, body: InitBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        ctx.project(project, Role.maintainer)
        repo = _repo(call, project)
        repo.init(template=body.template)
        described = repo.apply()
        ctx.audit(
            "features.init", "feature_repo", project, project=project, details={"template": body.template}
        )
    return described


@router.post(
    "/apply",
    dependencies=[requires(Role.developer)],
    summary="Apply the project's feature repository as a new version",
)
def apply(project: Name, body: ApplyBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
        repo = _repo(call, project)
        if not repo.exists():
            repo.init()
        if body.files is None:
            described = repo.apply()
        else:
            described = repo.apply_files(body.files, applied_by=call.principal.user_name)
        ctx.audit(
            "features.apply",
            "feature_repo",
            project,
            project=project,
            details={"version": described["version"], "changed": described["changed"]},
        )
    return described


@router.put(
    "/schedule",
    dependencies=[requires(Role.developer)],
    summary="How often the project's pipelines run and materialize",
)
def set_schedule(project: Name, body: ScheduleBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
        repo = _repo(call, project)
        repo.require()
        repo.set_schedule(body.every_minutes)
        ctx.audit("features.schedule", "feature_repo", project, project=project, details=body.model_dump())
    default = call.settings.features.materialize_every_minutes
    return {"every_minutes": body.every_minutes, "platform_default_minutes": default}


@router.get("/versions", summary="Every applied version of the repository")
def versions(project: Name, call: CallDep) -> list[dict[str, Any]]:
    return _repo(call, project).versions()


@router.get("/versions/{version}/files", summary="The files of one applied version")
def version_files(project: Name, version: int, call: CallDep) -> dict[str, str]:
    return _repo(call, project).version_files(version)


@router.put(
    "/tables/{table}",
    dependencies=[requires(Role.developer)],
    summary="Upload a table (parquet body) that pipelines read and sources may name",
    openapi_extra={MAX_BODY_KEY: project_tables.MAX_TABLE_BYTES},  # above server.max_body_bytes: an upload
)
async def put_table(project: Name, table: str, request: Request, call: CallDep) -> dict[str, Any]:
    project_tables.check_name(table)
    with call.tx() as ctx:  # the role is checked before the body is read
        ctx.project(project, Role.developer)
    body = await request.body()
    repo = _repo(call, project)
    if not repo.exists():
        await run_in_threadpool(repo.init)
    written = await run_in_threadpool(project_tables.write_table, repo, table, body)
    with call.tx() as ctx:
        ctx.audit(
            "features.table.put",
            "feature_table",
            f"{project}/{table}",
            project=project,
            details={"rows": written["rows"], "sha256": written["sha256"]},
        )
    return written


@router.get("/tables", summary="The project's tables: rows, columns, size")
def list_tables(project: Name, call: CallDep) -> list[dict[str, Any]]:
    return project_tables.list_tables(_repo(call, project))


@router.delete(
    "/tables/{table}", dependencies=[requires(Role.developer)], summary="Delete a table", status_code=204
)
def delete_table(project: Name, table: str, call: CallDep) -> None:
    project_tables.check_name(table)
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
        project_tables.delete_table(_repo(call, project), table)
        ctx.audit("features.table.delete", "feature_table", f"{project}/{table}", project=project)


@router.post(
    "/pipelines/run",
    dependencies=[requires(Role.developer)],
    summary="Run the feature pipelines and materialize",
)
def run_pipelines(project: Name, body: RunBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
    run = runs.run_pipelines(_repo(call, project), materialize=body.materialize)
    with call.tx() as ctx:
        ctx.audit(
            "features.pipelines.run",
            "feature_repo",
            project,
            project=project,
            details={"rows": run.rows, "materialized_until": run.materialized_until},
        )
    return run.__dict__


@router.post("/online", summary="Online feature values for entity keys", response_model=dict[str, list[Any]])
async def online(project: Name, body: OnlineBody, call: CallDep) -> JSONResponse:
    values = await serving.get_online_async(
        _repo(call, project),
        body.entities,
        feature_service=body.feature_service,
        features=body.features,
        request_data=body.request_data,
    )
    return JSONResponse(values)  # plain JSON types already: skip the response-model pass


dataplane.add_api_route(
    "/features/online",
    online,
    methods=["POST"],
    summary="Online feature values for entity keys",
    response_model=dict[str, list[Any]],
)


@router.post(
    "/training-set", dependencies=[requires(Role.developer)], summary="A point-in-time correct training set"
)
def training_set(project: Name, body: TrainingSetBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
    frame = pd.DataFrame(body.entity_df)
    if "event_timestamp" in frame.columns:
        frame["event_timestamp"] = _parse_times(frame["event_timestamp"])
    result = serving.get_training_set(
        _repo(call, project), frame, feature_service=body.feature_service, features=body.features
    )
    out = json.loads(result.to_json(orient="split", date_format="iso", date_unit="us", index=False))
    out["dtypes"] = {c: str(t) for c, t in result.dtypes.items()}  # JSON has one number type
    return out


def _parse_times(column: pd.Series) -> pd.Series:
    try:
        parsed = pd.to_datetime(column, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InvalidInput.field("entity_df.event_timestamp", f"not ISO times: {exc}") from exc
    return parsed


@router.get("/views/{view}/stats", summary="Statistics and freshness of a feature view")
def view_stats(project: Name, view: str, call: CallDep) -> dict[str, Any]:
    return stats.feature_stats(_repo(call, project), view)


@router.get("/views/{view}/drift", summary="PSI drift between two time windows")
def view_drift(
    project: Name,
    view: str,
    call: CallDep,
    reference_start: datetime | None = None,
    reference_end: datetime | None = None,
    current_start: datetime | None = None,
    current_end: datetime | None = None,
) -> dict[str, Any]:
    reference = (reference_start, reference_end) if reference_start and reference_end else None
    current = (current_start, current_end) if current_start and current_end else None
    return stats.feature_drift(_repo(call, project), view, reference=reference, current=current)
