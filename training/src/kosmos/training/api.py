"""REST routes of the training package: datasets, runs and models, per project."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kosmos.platform.api import MAX_BODY_KEY, Call, CallDep, requires
from kosmos.platform.api.schemas import MAX_ROW_ID
from kosmos.platform.db.models import Role
from kosmos.platform.errors import InvalidInput
from kosmos.platform.identity.names import Name
from kosmos.training import registry
from kosmos.training.datasets import DatasetRepo, DatasetVersion

router = APIRouter(prefix="/projects/{project}", tags=["training"])
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
"""The largest parquet upload a dataset version takes (the route's body limit)."""


def _datasets(call: Call, project: str) -> DatasetRepo:
    return DatasetRepo(call.settings, project)


def _out(version: DatasetVersion) -> dict[str, Any]:
    return {**asdict(version), "tag": version.tag, "uri": version.uri}


@router.post(
    "/datasets/{name}",
    dependencies=[requires(Role.developer)],
    summary="Register a new version of a dataset (parquet body)",
    status_code=201,
    openapi_extra={MAX_BODY_KEY: MAX_UPLOAD_BYTES},  # above server.max_body_bytes: an upload
)
async def register_dataset(
    project: Name,
    name: Name,
    request: Request,
    call: CallDep,
    feature_service: str | None = None,
    description: str = "",
) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise InvalidInput.field("body", f"at most {MAX_UPLOAD_BYTES} bytes of parquet")
    try:
        frame = pd.read_parquet(io.BytesIO(body))
    except Exception as exc:
        raise InvalidInput.field("body", f"not a parquet file: {exc}") from exc
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
        version = _datasets(call, project).register(
            name,
            frame,
            created_by=call.principal.user_name,
            feature_service=feature_service,
            feature_version=_feature_version(call, project) if feature_service else None,
            description=description,
        )
        ctx.audit(
            "dataset.register",
            "dataset",
            version.tag,
            project=project,
            details={"rows": version.rows, "hash": version.content_hash},
        )
    return _out(version)


def _feature_version(call: Call, project: str) -> int | None:
    """The project's current feature repository version: what a training set was just built from."""
    from kosmos.features.repo import feature_repo

    current = feature_repo(call.settings, project).current_version()
    return current["version"] if current else None


@router.get("/datasets", summary="Datasets and their latest versions")
def list_datasets(project: Name, call: CallDep) -> list[dict[str, Any]]:
    repo = _datasets(call, project)
    return [_out(repo.get(name)) for name in repo.names()]


@router.get("/datasets/{name}/versions", summary="Every version of a dataset")
def list_versions(project: Name, name: Name, call: CallDep) -> list[dict[str, Any]]:
    return [_out(v) for v in _datasets(call, project).versions(name)]


@router.get("/datasets/{name}/versions/{version}", summary="One version's metadata ('latest' works)")
def show_version(project: Name, name: Name, version: str, call: CallDep) -> dict[str, Any]:
    return _out(_datasets(call, project).get(name, _version_number(version)))


@router.get("/datasets/{name}/versions/{version}/data", summary="One version's data as parquet")
def version_data(project: Name, name: Name, version: str, call: CallDep) -> Response:
    frame = _datasets(call, project).load(name, _version_number(version))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet")


@router.post(
    "/datasets/{name}/versions/{version}/feature-table",
    dependencies=[requires(Role.developer)],
    summary="Make a dataset version one of the project's feature tables",
)
def as_feature_table(
    project: Name, name: Name, version: str, call: CallDep, table: str | None = None
) -> dict[str, Any]:
    from kosmos.features import project_tables
    from kosmos.features.repo import feature_repo

    target = project_tables.check_name(table or name.replace("-", "_"))
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
        datasets = _datasets(call, project)
        meta = datasets.get(name, _version_number(version))
        buffer = io.BytesIO()
        datasets.load(name, meta.version).to_parquet(buffer, index=False)
        repo = feature_repo(call.settings, project)
        if not repo.exists():
            repo.init()
        written = project_tables.write_table(repo, target, buffer.getvalue(), origin=meta.uri)
        ctx.audit(
            "features.table.put",
            "feature_table",
            f"{project}/{target}",
            project=project,
            details={"rows": written["rows"], "origin": meta.uri},
        )
    return written


@router.get("/datasets/{name}/diff", summary="Schema and statistics changes between two versions")
def diff_versions(
    project: Name, name: Name, call: CallDep, a: Annotated[int, Query(ge=1)], b: Annotated[int, Query(ge=1)]
) -> dict[str, Any]:
    return _datasets(call, project).diff(name, a, b)


def _version_number(version: str) -> int | None:
    if version == "latest":
        return None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput.field("version", "a positive integer or 'latest'")
    return int(version)


# -- runs -------------------------------------------------------------------------------------
@router.get("/runs", summary="Training runs of the project's experiments")
def list_runs(
    project: Name,
    call: CallDep,
    experiment: Name | None = None,
    filter: str | None = None,  # noqa: A002 - the REST name
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return registry.search_runs(
        call.settings, project, experiment=experiment, filter_string=filter, limit=limit
    )


@router.get("/runs/{run_id}", summary="One run: params, metrics, tags, inputs")
def show_run(project: Name, run_id: str, call: CallDep) -> dict[str, Any]:
    return registry.get_run(call.settings, project, run_id)


@router.get("/runs/{run_id}/metrics/{key}/history", summary="A metric's values by step (curves)")
def metric_history(project: Name, run_id: str, key: str, call: CallDep) -> list[dict[str, Any]]:
    return registry.metric_history(call.settings, project, run_id, key)


@router.get("/runs/{run_id}/images", summary="The run's image artifacts (ROC curve, ...)")
def run_images(project: Name, run_id: str, call: CallDep) -> list[str]:
    return registry.run_images(call.settings, project, run_id)


@router.get("/runs/{run_id}/images/{path:path}", summary="One image artifact of the run")
def run_image(project: Name, run_id: str, path: str, call: CallDep) -> Response:
    data = registry.run_image(call.settings, project, run_id, path)
    kind = "image/svg+xml" if path.lower().endswith(".svg") else f"image/{path.rsplit('.', 1)[-1].lower()}"
    return Response(data, media_type=kind.replace("jpg", "jpeg"))


@router.get("/runs-compare", summary="Runs side by side")
def compare_runs(project: Name, call: CallDep, run_id: Annotated[list[str], Query()]) -> list[dict[str, Any]]:
    return [registry.get_run(call.settings, project, r) for r in run_id]


# -- models -----------------------------------------------------------------------------------
class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(description="The run that logged the model.")
    artifact: str = Field(default="model", description="The model's name within the run.")


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_ROW_ID, description="The model version to point the alias at.")
    alias: str = Field(
        default="champion",
        pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="champion, challenger, or another alias.",
    )
    reason: str = Field(min_length=3, max_length=2000, description="Why: recorded with who and when.")


@router.post(
    "/models/{name}",
    dependencies=[requires(Role.developer)],
    summary="Register a model version from a run",
    status_code=201,
)
def register_model(project: Name, name: Name, body: RegisterBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        ctx.project(project, Role.developer)
        version = registry.register_model(
            call.settings, project, name, body.run_id, body.artifact, actor=call.principal.user_name
        )
        ctx.audit(
            "model.register",
            "model",
            f"{name}/v{version['version']}",
            project=project,
            details={"run_id": body.run_id},
        )
    return version


@router.get("/models", summary="Registered models of the project")
def list_models(project: Name, call: CallDep) -> list[dict[str, Any]]:
    return registry.list_models(call.settings, project)


@router.get("/models/{name}", summary="A model: versions, aliases, metrics side by side")
def show_model(project: Name, name: Name, call: CallDep) -> dict[str, Any]:
    return registry.show_model(call.settings, project, name)


@router.post(
    "/models/{name}/promote",
    dependencies=[requires(Role.maintainer)],
    summary="Point an alias at a version, with a reason",
)
def promote(project: Name, name: Name, body: PromoteBody, call: CallDep) -> dict[str, Any]:
    with call.tx() as ctx:
        ctx.project(project, Role.maintainer)
        result = registry.promote(
            call.settings,
            project,
            name,
            body.version,
            body.alias,
            actor=call.principal.user_name,
            reason=body.reason,
        )
        ctx.audit(
            "model.promote",
            "model",
            f"{name}/v{body.version}",
            project=project,
            details={"alias": body.alias, "reason": body.reason, "previous": result.get("previous_version")},
        )
    return result


@router.get("/models/{name}/versions/{version}/lineage", summary="Model -> run -> code -> data -> features")
def lineage(project: Name, name: Name, version: str, call: CallDep) -> dict[str, Any]:
    return registry.lineage(call.settings, project, name, version)
