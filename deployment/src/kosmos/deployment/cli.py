"""`kosmos deploy ...`: the deployment CLI for MLOps engineers.

Exit codes: 0 done, 2 invalid input, 3 unauthenticated, 4 forbidden, 5 not found,
6 conflict (e.g. a rollout already running), 7 control plane unreachable,
8 the deployment failed or was rolled back while waiting, 9 timed out waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from kosmos.deployment import sdk
from kosmos.platform.cli.output import Output, OutputOption, handle_errors, read_json_object, render
from kosmos.platform.errors import InvalidInput

app = typer.Typer(help="Model deployments on Ray Serve: rollouts, status, logs.", no_args_is_help=True)
ProjectOption = typer.Option(..., "--project", "-p", help="The project.")
WaitOption = typer.Option(False, "--wait", "-w", help="Block until the change has finished.")
TimeoutOption = typer.Option(600.0, "--timeout", help="Seconds --wait waits before exit code 9.")
EXIT_FAILED, EXIT_TIMEOUT = 8, 9
COLUMNS = ["name", "model", "stable_version", "candidate_version", "strategy", "traffic", "status", "reason"]


def _progress(d: dict[str, Any]) -> None:
    traffic = ", ".join(f"v{v} {w}%" for v, w in d["traffic"].items())
    typer.echo(f"  {d['status']:<10} [{traffic}] {d['reason']}", err=True)


def _finish(
    project: str, name: str, wait: bool, timeout: float, output: Output, result: dict[str, Any]
) -> None:
    before = (result.get("details") or {}).get("last_rollback")
    if wait:
        try:
            result = sdk.wait(project, name, timeout_s=timeout, on_change=_progress)
        except TimeoutError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_TIMEOUT) from None
    render(result, output, COLUMNS)
    # the outcome is the change's, not today's status: after an automatic rollback the stable
    # version is healthy again within seconds, but the rollout failed
    rolled = (result.get("details") or {}).get("last_rollback")
    if wait and (result["status"] == "failed" or (rolled and rolled != before)):
        if rolled and rolled != before:
            typer.echo(
                f"error: v{rolled.get('version')} was rolled back: {rolled.get('reason', '')}", err=True
            )
        raise typer.Exit(EXIT_FAILED)


@app.command("create")
@handle_errors
def create(
    name: str,
    model: str = typer.Option(..., "--model", "-m", help="Registered model name in the project."),
    version: str = typer.Option("champion", "--version", "-v", help="Version number or alias."),
    project: str = ProjectOption,
    replicas: int = typer.Option(1, help="Replicas per model version."),
    min_replicas: int | None = typer.Option(None, help="Autoscaling: fewest replicas."),
    max_replicas: int | None = typer.Option(None, help="Autoscaling: most replicas."),
    target_ongoing_requests: float = typer.Option(8.0, help="Autoscaling: requests in flight per replica."),
    max_replicas_per_node: int | None = typer.Option(
        None, help="Most replicas of a version per Ray node (1: one per node, for availability)."
    ),
    feature_service: str | None = typer.Option(None, help="Feast feature service to join online."),
    strategy: str = typer.Option("canary", help="Rollout strategy for later versions."),
    llm: bool = typer.Option(False, "--llm", help="An LLM endpoint (OpenAI API) instead of a classic model."),
    engine: str = typer.Option("auto", help="--llm: auto or a registered engine (transformers, vllm, ...)."),
    optimize: list[str] | None = typer.Option(
        None, "--optimize", help="Try this optimization (int8, onnx); repeat for both. Tune it in --spec."
    ),
    spec_file: Path | None = typer.Option(None, "--spec", help="A JSON file with the full DeploymentSpec."),
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    output: Output = OutputOption,
) -> None:
    """Deploy MODEL as NAME."""
    spec: dict[str, Any] = read_json_object(spec_file, "--spec", "DeploymentSpec fields") if spec_file else {}
    spec.setdefault("version", version)
    spec.setdefault("replicas", replicas)
    if min_replicas is not None or max_replicas is not None:
        spec["autoscaling"] = {
            "min_replicas": min_replicas if min_replicas is not None else 1,
            "max_replicas": max_replicas if max_replicas is not None else max(min_replicas or 1, 2),
            "target_ongoing_requests": target_ongoing_requests,
        }
    if feature_service:
        spec["feature_service"] = feature_service
    if max_replicas_per_node is not None:
        spec["max_replicas_per_node"] = max_replicas_per_node
    if llm:
        spec["llm"] = {"engine": engine, **(spec.get("llm") or {})}
    elif engine != "auto":
        raise InvalidInput.field("--engine", "applies to LLM deployments: add --llm")
    if optimize:
        spec["optimization"] = {**(spec.get("optimization") or {}), "methods": optimize}
    spec.setdefault("rollout", {})["strategy"] = spec.get("rollout", {}).get("strategy", strategy)
    result = sdk.create(project, name, model, **spec)
    _finish(project, name, wait, timeout, output, result)


@app.command("list")
@handle_errors
def list_(project: str = ProjectOption, output: Output = OutputOption) -> None:
    render(sdk.list_deployments(project), output, COLUMNS)


@app.command("status")
@handle_errors
def status(name: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Status, reason, traffic split, and live statistics per version."""
    deployment = sdk.status(project, name)
    if output is Output.json:
        render(deployment, output)
        return
    render(deployment, output, COLUMNS)
    if deployment["status"] in ("healthy", "unstable", "degraded"):
        try:
            live = sdk.stats(project, name)
        except Exception as exc:  # statistics are a bonus: the status above stands
            typer.echo(f"(no live statistics: {exc})")
            return
        rows = [{"version": v, **s} for v, s in live.items() if v != "policy"]
        render(rows, output, ["version", "requests", "errors", "error_rate", "p50_ms", "p99_ms"])


@app.command("rollout")
@handle_errors
def rollout(
    name: str,
    version: str = typer.Option(..., "--version", "-v", help="Version number or alias to roll out."),
    strategy: str | None = typer.Option(None, help="direct, canary, shadow, blue_green or ab."),
    project: str = ProjectOption,
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    output: Output = OutputOption,
) -> None:
    """Move NAME to another model version (canary by default)."""
    _finish(project, name, wait, timeout, output, sdk.rollout(project, name, version, strategy=strategy))


@app.command("promote")
@handle_errors
def promote(name: str, project: str = ProjectOption, reason: str = "", output: Output = OutputOption) -> None:
    """Give the version being rolled out all traffic now."""
    render(sdk.promote(project, name, reason=reason), output, COLUMNS)


@app.command("rollback")
@handle_errors
def rollback(
    name: str,
    project: str = ProjectOption,
    reason: str = "",
    wait: bool = WaitOption,
    timeout: float = TimeoutOption,
    output: Output = OutputOption,
) -> None:
    """Drop the version being rolled out, or return to the previous version."""
    result = sdk.rollback(project, name, reason=reason)
    if wait:
        result = sdk.wait(project, name, timeout_s=timeout, on_change=_progress)
    render(result, output, COLUMNS)


@app.command("scale")
@handle_errors
def scale(
    name: str,
    project: str = ProjectOption,
    replicas: int | None = typer.Option(None, help="A fixed number of replicas."),
    min_replicas: int | None = typer.Option(None),
    max_replicas: int | None = typer.Option(None),
    target_ongoing_requests: float = typer.Option(8.0),
    output: Output = OutputOption,
) -> None:
    autoscaling = None
    if min_replicas is not None or max_replicas is not None:
        autoscaling = {
            "min_replicas": min_replicas or 1,
            "max_replicas": max_replicas or max(min_replicas or 1, 2),
            "target_ongoing_requests": target_ongoing_requests,
        }
    render(sdk.scale(project, name, replicas=replicas, autoscaling=autoscaling), output, COLUMNS)


@app.command("delete")
@handle_errors
def delete(name: str, project: str = ProjectOption) -> None:
    sdk.delete(project, name)
    typer.echo(f"deployment {name} is being deleted")


@app.command("replay")
@handle_errors
def replay_window(
    name: str,
    version: str = typer.Option(..., "--version", "-v", help="The version or alias to decide the traffic."),
    project: str = ProjectOption,
    since: str | None = typer.Option(None, help="From this time (ISO, with a time zone)."),
    until: str | None = typer.Option(None, help="Up to this time (ISO, with a time zone)."),
    output: Output = OutputOption,
) -> None:
    """What VERSION would have decided on NAME's recorded traffic (agreement; an MLflow run)."""
    summary = sdk.replay_window(project, name, version, since=since, until=until)
    if output != "table":
        render(summary, output)
        return
    typer.echo(
        f"v{summary['version']} on {summary['requests']} requests ({summary['rows']} rows, "
        f"{summary['since']} .. {summary['until']}): agreement {summary['agreement']:.1%}, "
        f"{summary['changed']} decisions change; MLflow run {summary['mlflow_run_id']}"
    )
    rows = [{"recorded_version": v, **s} for v, s in summary["by_recorded_version"].items()]
    render(rows, output, ["recorded_version", "rows", "agreement"])


@app.command("logs")
@handle_errors
def logs(name: str, project: str = ProjectOption, limit: int = 20, output: Output = OutputOption) -> None:
    """The sampled inference log: request id, version, latency, features used, prediction."""
    render(
        sdk.logs(project, name, limit=limit),
        output,
        ["request_id", "model_version", "latency_ms", "rows", "predictions"],
    )


@app.command("events")
@handle_errors
def events(name: str, project: str = ProjectOption, limit: int = 50, output: Output = OutputOption) -> None:
    """The deployment's history, newest first: rollouts, canary steps, promotions, rollbacks, who and why."""
    found = sdk.events(project, name, limit=limit)
    if output == "table":  # a table cell reads key=value; json and yaml keep the structure
        found = [{**e, "details": _readable(e["details"])} for e in found]
    render(found, output, ["at", "action", "actor", "details"])


def _when(stamps: list[Any]) -> str | None:
    """An event time (epoch seconds, as Feast returns it) as UTC ISO text."""
    if not stamps or stamps[0] in (None, 0):
        return None
    return datetime.fromtimestamp(float(stamps[0]), UTC).isoformat()


def _readable(details: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in (details or {}).items() if not isinstance(v, dict | list))


# One command each, mounted as a group (a plugin adds groups): a group stops reading options at
# its first argument unless told otherwise, and `kosmos explain ID -p demo` is how docs write it.
_ONE_COMMAND = {"allow_interspersed_args": True}
explain_app = typer.Typer(
    help="Why a request was answered as it was: its decision record and lineage.",
    context_settings=_ONE_COMMAND,
)
replay_app = typer.Typer(
    help="Recompute a prediction from its decision record; compare and check skew.",
    context_settings=_ONE_COMMAND,
)


@explain_app.callback(invoke_without_command=True)
@handle_errors
def explain(
    request_id: str = typer.Argument(..., help="The X-Request-Id the call answered with."),
    project: str = ProjectOption,
    output: Output = OutputOption,
) -> None:
    """The decision record of REQUEST_ID, with its model version's run, commit, dataset and features."""
    found = sdk.explain(project, request_id)
    if output != "table":
        render(found, output)
        return
    record = found["record"]
    facts = {
        "request": request_id,
        "at": record.get("at"),
        "deployment": record.get("deployment"),
        "caller": record.get("caller"),
        "status": record.get("status"),
        "model": f"{record.get('model')} v{record.get('model_version')}",
        "traffic": (record.get("traffic") or {}).get("arm"),
        "latency_ms": record.get("latency_ms"),
    }
    lineage = found.get("lineage") or {}
    if lineage:
        facts["run"] = lineage["run"]["run_id"]
        facts["commit"] = (lineage.get("code") or {}).get("commit")
        dataset = lineage.get("dataset") or {}
        facts["dataset"] = f"{dataset.get('name')} v{dataset.get('version')}" if dataset else None
    if found.get("missing"):
        facts["note"] = found["missing"]
    for key, value in facts.items():
        typer.echo(f"{key:>11}: {value}")
    features = record.get("features") or {}
    if features:
        rows = [
            {"row": i, "feature": name, "view": item.get("view"), "value": value,
             "event_time": _when((item.get("event_timestamps") or [])[i:i + 1])}
            for name, item in features.items()
            for i, value in enumerate(item["values"])
        ]  # fmt: skip
        rows.sort(key=lambda r: r["row"])  # a request's rows one after another
        render(rows, output, ["row", "feature", "view", "value", "event_time"])
    output_ = record.get("output") or {}
    typer.echo(f"     output: {output_.get('predictions', record.get('error'))}")


@replay_app.callback(invoke_without_command=True)
@handle_errors
def replay(
    request_id: str = typer.Argument(..., help="The X-Request-Id the prediction answered with."),
    project: str = ProjectOption,
    against: str = typer.Option("champion", help="A version or alias to decide the same input too."),
    output: Output = OutputOption,
) -> None:
    """Recompute REQUEST_ID's prediction from its record: same output? today's champion? skew?"""
    found = sdk.replay(project, request_id, against=against)
    if output != "table":
        render(found, output)
        return
    typer.echo(
        f"model v{found['model_version']}: exact={found['exact']} max_abs_diff={found.get('max_abs_diff')}"
    )
    other = found.get("against") or {}
    if other:
        typer.echo(
            f"{other['alias']} (v{other['version']}): decides differently on rows "
            f"{other.get('decides_differently')}"
        )
    skew = found.get("skew") or {}
    if not skew.get("checked"):
        typer.echo(f"skew: not checked ({skew.get('reason')})")
    elif skew["skewed"]:
        for column, rows in skew["skewed"].items():
            typer.echo(f"skew: {column}: {rows}")
    else:
        typer.echo(f"skew: none in {len(skew['columns'])} features as of {skew['as_of']}")
