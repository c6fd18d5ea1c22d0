"""`kosmos features ...`: feature repositories, pipelines, online lookups, statistics."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kosmos.features import sdk
from kosmos.platform.cli.output import Output, OutputOption, handle_errors, render
from kosmos.platform.client import KosmosClient
from kosmos.platform.errors import InvalidInput

app = typer.Typer(help="Feature views, pipelines and online features (Feast).", no_args_is_help=True)
ProjectOption = typer.Option(..., "--project", "-p", help="The project.")


KINDS = {
    "entities": "entity",
    "feature_views": "feature view",
    "on_demand_feature_views": "on-demand view",
    "feature_services": "feature service",
}
"""The kinds of definition ``features list`` shows, as the registry names them and as people do."""


def _definitions(described: dict) -> list[dict[str, str]]:
    return [{"kind": kind, "name": name} for key, kind in KINDS.items() for name in described[key]]


@app.command("list")
@handle_errors
def list_(project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Feature views, on-demand views and feature services of a project."""
    described = sdk.list_features(project)
    render(described if output is Output.json else _definitions(described), output)


@app.command("init")
@handle_errors
def init(
    project: str = ProjectOption,
    template: str | None = typer.Option(
        None, help="A packaged template by name (an unknown name gets the list)."
    ),
    output: Output = OutputOption,
) -> None:
    """Create the project's Feast repository (optionally from a template) and apply it."""
    with KosmosClient() as client:
        render(client.post(f"/projects/{project}/features/init", {"template": template}), output)


@app.command("apply")
@handle_errors
def apply(
    path: Path | None = typer.Argument(
        None, help="Your feature repository: a folder of Feast definitions and pipelines (*.py)."
    ),
    project: str = ProjectOption,
    output: Output = OutputOption,
) -> None:
    """Apply a folder's feature repository as the project's next version (no PATH: apply it again)."""
    if path is None:
        with KosmosClient() as client:
            described = client.post(f"/projects/{project}/features/apply", {})
    else:
        described = sdk.apply_repository(project, path)
    if output is Output.json:
        render(described, output)
        return
    state = "applied as" if described["changed"] else "unchanged, still"
    typer.echo(f"{project}: {state} version {described['version']}")
    render(_definitions(described), output)


@app.command("upload")
@handle_errors
def upload(
    table: str = typer.Argument(..., help="The table's name: pipelines take it as a parameter of this name."),
    file: Path = typer.Argument(..., help="A parquet or CSV file.", exists=True, dir_okay=False),
    project: str = ProjectOption,
    output: Output = OutputOption,
) -> None:
    """Upload a table (replacing one of the same name) for pipelines and sources to read."""
    render(sdk.upload_table(project, table, file), output)


@app.command("schedule")
@handle_errors
def schedule(
    every: int | None = typer.Option(None, "--every", help="Minutes between runs; 0: on demand only."),
    default: bool = typer.Option(False, "--default", help="Follow the platform's default again."),
    project: str = ProjectOption,
    output: Output = OutputOption,
) -> None:
    """How often the project's pipelines run and materialize while the platform runs."""
    if (every is None) == (not default):
        raise InvalidInput.field("every", "give --every MINUTES or --default")
    render(sdk.set_schedule(project, None if default else every), output)


@app.command("tables")
@handle_errors
def tables(project: str = ProjectOption, output: Output = OutputOption) -> None:
    """The project's tables: rows, columns and size."""
    found = sdk.list_tables(project)
    rows = [{**t, "columns": ", ".join(t["columns"])} for t in found]
    render(found if output is Output.json else rows, output)


@app.command("versions")
@handle_errors
def versions(project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Every applied version of the project's feature repository."""
    found = sdk.list_versions(project)
    rows = [{**v, "sha256": v["sha256"][:12], "files": ", ".join(v["files"])} for v in found]
    render(found if output is Output.json else rows, output)


@app.command("run")
@handle_errors
def run(
    project: str = ProjectOption,
    materialize: bool = typer.Option(True, help="Also materialize."),
    output: Output = OutputOption,
) -> None:
    """Run the feature pipelines, then materialize into the online store."""
    typer.echo(f"running the feature pipelines of {project} ...", err=True)
    render(sdk.run_pipelines(project, materialize=materialize), output)


def _parse_pairs(pairs: list[str], what: str) -> dict[str, list[object]]:
    parsed: dict[str, list[object]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidInput.field(what, f"{pair!r} must look like key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parsed.setdefault(key, []).append(value)
    return parsed


@app.command("get")
@handle_errors
def get(
    project: str = ProjectOption,
    entity: list[str] = typer.Option(..., "--entity", "-e", help="Join key and value: user_id=7."),
    service: str | None = typer.Option(None, "--service", "-s", help="Feature service."),
    feature: list[str] = typer.Option([], "--feature", "-f", help="view:feature (repeatable)."),
    request: list[str] = typer.Option([], "--request", "-r", help="Request data: amount=12.5."),
    output: Output = OutputOption,
) -> None:
    """Online feature values for entity keys."""
    values = sdk.get_online(
        project,
        _parse_pairs(entity, "entity"),
        feature_service=service,
        features=feature or None,
        request_data=_parse_pairs(request, "request") or None,
    )
    if output is Output.json:
        render(values, output)
        return
    rows = [{"feature": name, **{f"row {i}": v for i, v in enumerate(col)}} for name, col in values.items()]
    render(rows, output)


@app.command("stats")
@handle_errors
def stats(view: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Row count, freshness and per-feature statistics of a feature view."""
    result = sdk.feature_stats(project, view)
    if output is Output.json:
        render(result, output)
        return
    typer.echo(f"{result['view']}: {result['rows']} rows, latest event {result['latest_event']}")
    render([{"feature": k, **v} for k, v in result["features"].items()], output)


@app.command("drift")
@handle_errors
def drift(view: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    """PSI drift of each feature: the week before last against last week."""
    result = sdk.feature_drift(project, view)
    if output is Output.json:
        render(result, output)
        return
    render(
        [
            {"feature": k, "psi": None if v is None else round(v, 4), "drifted": k in result["drifted"]}
            for k, v in result["psi"].items()
        ],
        output,
    )
