"""`kosmos datasets|runs|models ...`: versioned data, tracked runs and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kosmos.platform.cli.output import Output, OutputOption, handle_errors, render
from kosmos.training import sdk

datasets = typer.Typer(help="Versioned datasets (DVC).", no_args_is_help=True)
runs = typer.Typer(help="Training runs (MLflow).", no_args_is_help=True)
models = typer.Typer(help="Registered models: versions, aliases, lineage.", no_args_is_help=True)
ProjectOption = typer.Option(..., "--project", "-p", help="The project.")


@datasets.command("register")
@handle_errors
def datasets_register(
    name: str,
    path: Path,
    project: str = ProjectOption,
    feature_service: str | None = None,
    description: str = "",
    output: Output = OutputOption,
) -> None:
    """Version a parquet or CSV file as the next version of NAME."""
    version = sdk.register_dataset(
        project, name, path, feature_service=feature_service, description=description
    )
    render(version, output, ["name", "version", "rows", "content_hash", "created_by", "created_at"])


@datasets.command("list")
@handle_errors
def datasets_list(project: str = ProjectOption, output: Output = OutputOption) -> None:
    render(sdk.list_datasets(project), output, ["name", "version", "rows", "created_by", "created_at"])


@datasets.command("versions")
@handle_errors
def datasets_versions(name: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    render(
        sdk.dataset_versions(project, name),
        output,
        ["version", "rows", "content_hash", "feature_service", "created_by", "created_at"],
    )


@datasets.command("diff")
@handle_errors
def datasets_diff(name: str, a: int, b: int, project: str = ProjectOption) -> None:
    """Schema and statistics changes from version A to version B."""
    typer.echo(json.dumps(sdk.diff_datasets(project, name, a, b), indent=2))


@runs.command("list")
@handle_errors
def runs_list(
    project: str = ProjectOption,
    experiment: str | None = None,
    filter: str | None = typer.Option(None, help='MLflow filter, e.g. "metrics.roc_auc > 0.8"'),  # noqa: A002
    limit: int = 50,
    output: Output = OutputOption,
) -> None:
    rows = sdk.list_runs(project, experiment, filter=filter, limit=limit)
    if output is Output.json:
        render(rows, output)
        return
    render(
        [
            {
                "run_id": r["run_id"],
                "run_name": r.get("run_name"),
                "experiment": r["experiment"],
                "status": r["status"],
                "start_time": r["start_time"],
                "metrics": ", ".join(f"{k}={v:.4g}" for k, v in sorted(r["metrics"].items())[:4]),
            }
            for r in rows
        ],
        output,
    )


@runs.command("show")
@handle_errors
def runs_show(run_id: str, project: str = ProjectOption) -> None:
    """Params, metrics, tags and dataset inputs of one run."""
    typer.echo(json.dumps(sdk.get_run(project, run_id), indent=2))


@runs.command("compare")
@handle_errors
def runs_compare(run_ids: list[str], project: str = ProjectOption) -> None:
    """Params and metrics of runs side by side."""
    typer.echo(sdk.compare_runs(project, run_ids).to_string())


@models.command("list")
@handle_errors
def models_list(project: str = ProjectOption, output: Output = OutputOption) -> None:
    render(sdk.list_models(project), output)


@models.command("show")
@handle_errors
def models_show(name: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Versions side by side with their metrics and aliases."""
    model = sdk.show_model(project, name)
    if output is Output.json:
        render(model, output)
        return
    render(
        [
            {
                "version": v["version"],
                "aliases": ",".join(v["aliases"]),
                "run_id": v["run_id"],
                **{k: round(m, 4) for k, m in v["metrics"].items() if k in ("roc_auc", "pr_auc")},
            }
            for v in model["versions"]
        ],
        output,
    )


@models.command("register")
@handle_errors
def models_register(
    name: str, run_id: str, project: str = ProjectOption, output: Output = OutputOption
) -> None:
    render(sdk.register_model(project, name, run_id), output)


@models.command("promote")
@handle_errors
def models_promote(
    name: str,
    version: int,
    project: str = ProjectOption,
    alias: str = typer.Option("champion", help="champion or challenger"),
    reason: str = typer.Option(..., help="Why; recorded with who and when."),
    output: Output = OutputOption,
) -> None:
    render(sdk.promote(project, name, version, alias=alias, reason=reason), output)


@models.command("lineage")
@handle_errors
def models_lineage(
    name: str, version: str = typer.Argument("champion"), project: str = ProjectOption
) -> None:
    """Model version -> run -> code commit -> dataset version -> feature views."""
    trail = sdk.lineage(project, name, version)
    typer.echo(f"model    {name} v{trail['model']['version']} {trail['model']['aliases']}")
    typer.echo(f"run      {trail['run']['run_id']} ({trail['run']['status']})")
    code = trail["code"]
    typer.echo(f"code     {code['commit']}{' (dirty)' if code['dirty'] else ''} in {code['repo']}")
    if trail["dataset"]:
        d = trail["dataset"]
        typer.echo(f"dataset  {d['name']} v{d['version']} ({d['rows']} rows, {d['hash'][:12]})")
    if trail["features"]:
        f = trail["features"]
        views = ", ".join(v["name"] for v in f["feature_views"])
        typer.echo(f"features {f['feature_service']}: {views}")
