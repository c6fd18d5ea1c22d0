"""`kosmos prompts ...`, `kosmos cache ...` and `kosmos gateway ...`.

Exit codes as every Kosmos command: 0 done, 2 invalid input, 3 unauthenticated,
4 forbidden, 5 not found, 7 control plane unreachable.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kosmos.genai import sdk
from kosmos.genai.cache_stats import namespace_figures
from kosmos.platform.cli.output import Output, OutputOption, handle_errors, read_json_object, render
from kosmos.platform.errors import InvalidInput

ProjectOption = typer.Option(..., "--project", "-p", help="The project.")
prompts = typer.Typer(
    help="Prompts on the MLflow prompt registry: versions, aliases, diffs.", no_args_is_help=True
)
cache = typer.Typer(
    help="The gateway's semantic cache: statistics, flush, invalidation.", no_args_is_help=True
)
gateway = typer.Typer(help="The project's gateway policy: limits, routes, cache.", no_args_is_help=True)
assistant = typer.Typer(help="The Kosmos assistant: the docs and your projects.", no_args_is_help=True)


@assistant.command("ask")
@handle_errors
def assistant_ask(question: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Ask about using Kosmos or about the project's live state; prints the sources it used."""
    reply = sdk.ask_assistant(project, question)
    if output is Output.json:
        render(reply, output)
        return
    model = reply["model"]
    typer.echo(reply["answer"] or f"(no model answer: {model.get('error', 'unavailable')})")
    typer.echo("\n" + reply["summary"])
    if model.get("cache"):
        typer.echo(f"\n[{model['name']}, cache {model['cache']}, request {model.get('request_id')}]")


@prompts.command("list")
@handle_errors
def prompts_list(project: str = ProjectOption, output: Output = OutputOption) -> None:
    render(sdk.list_prompts(project), output, ["name", "latest_version", "aliases", "commit_message"])


@prompts.command("show")
@handle_errors
def prompts_show(name: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Every version of NAME with its commit message and aliases."""
    shown = sdk.show_prompt(project, name)
    if output is Output.json:
        render(shown, output)
        return
    render(shown["versions"], output, ["version", "aliases", "variables", "commit_message", "template"])
    for alias, split in shown["splits"].items():
        typer.echo(f"split: {name}@{alias} sends {split['weight']:.0%} to version {split['version']}")


@prompts.command("register")
@handle_errors
def prompts_register(
    name: str,
    message: str = typer.Option(..., "--message", "-m", help="The commit message."),
    template: str | None = typer.Option(None, "--template", "-t", help="The template text ({{variables}})."),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Read the template from a file (.json: chat)."
    ),
    project: str = ProjectOption,
    output: Output = OutputOption,
) -> None:
    """Register a new version of NAME."""
    if (template is None) == (file is None):
        raise InvalidInput.field("--template", "give the template with --template or --file (one of them)")
    body: str | list = template or ""
    if file is not None:
        try:
            text = file.read_text()
        except OSError as exc:
            raise InvalidInput.field("--file", f"cannot read {file}: {exc}") from None
        try:
            body = json.loads(text) if file.suffix == ".json" else text
        except ValueError as exc:
            raise InvalidInput.field("--file", f"{file} is not valid JSON (a chat template): {exc}") from None
    render(
        sdk.register_prompt(project, name, body, message),
        output,
        ["name", "version", "variables", "commit_message"],
    )


@prompts.command("diff")
@handle_errors
def prompts_diff(name: str, a: int, b: int, project: str = ProjectOption) -> None:
    """The unified diff between versions A and B of NAME."""
    typer.echo(sdk.diff_prompt(project, name, a, b) or "(no difference)")


@prompts.command("set-alias")
@handle_errors
def prompts_set_alias(
    name: str, alias: str, version: int, project: str = ProjectOption, output: Output = OutputOption
) -> None:
    """Point ALIAS of NAME at VERSION (cached answers of the old version are dropped)."""
    render(
        sdk.set_prompt_alias(project, name, alias, version),
        output,
        ["name", "alias", "version", "previous", "cache_invalidated"],
    )


@prompts.command("split")
@handle_errors
def prompts_split(
    name: str,
    alias: str,
    version: int | None = typer.Argument(None, help="The challenger; leave out with --end."),
    weight: float = typer.Option(0.5, help="Share of the alias's traffic for the challenger."),
    end: bool = typer.Option(False, "--end", help="End the split."),
    project: str = ProjectOption,
    output: Output = OutputOption,
) -> None:
    """A/B test: send WEIGHT of NAME@ALIAS traffic to VERSION."""
    if end == (version is not None):
        raise InvalidInput.field("version", "give a VERSION to start a split, or --end to stop one")
    render(sdk.split_prompt(project, name, alias, None if end else version, weight), output)


@prompts.command("results")
@handle_errors
def prompts_results(name: str, project: str = ProjectOption, output: Output = OutputOption) -> None:
    """Per version: requests, reported successes and failures, latency."""
    render(sdk.prompt_results(project, name), output)


@cache.command("stats")
@handle_errors
def cache_stats(
    project: str = ProjectOption,
    hours: float = typer.Option(24, help="Look back this many hours."),
    output: Output = OutputOption,
) -> None:
    """Hit rate, estimated false-hit rate with its 95% interval, tokens and latency saved, flags."""
    render(sdk.cache_stats(project, hours=hours), output)


@cache.command("namespaces")
@handle_errors
def cache_namespaces(
    project: str = ProjectOption,
    hours: float = typer.Option(24, help="Statistics over this many hours."),
    output: Output = OutputOption,
) -> None:
    """Each namespace: threshold, entries, hit rate, estimated false hits (95% interval), flags."""
    spaces = sdk.cache_namespaces(project, hours=hours)
    if output is Output.json:
        return render(spaces, output)
    rows = [{**space, **namespace_figures(space["stats"])} for space in spaces]
    columns = ["id", "model", "model_version", "prompt", "threshold", "entries", "hits", "misses"]
    render(rows, output, [*columns, "hit_rate", "false_hits", "flagged", "tokens_saved"])


@cache.command("flush")
@handle_errors
def cache_flush(
    project: str = ProjectOption, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")
) -> None:
    """Drop every cached answer of the project."""
    if not yes:
        typer.confirm(f"Drop every cached answer of project {project!r}?", abort=True)
    typer.echo(f"invalidated {sdk.flush_cache(project)} entries")


@cache.command("invalidate")
@handle_errors
def cache_invalidate(
    project: str = ProjectOption,
    entry: int | None = typer.Option(None, help="One entry (its X-Kosmos-Cache-Entry)."),
    namespace: int | None = typer.Option(None, help="One namespace."),
    model: str | None = typer.Option(None, help="Every namespace of this model."),
    prompt: str | None = typer.Option(None, help="Every namespace that used this prompt."),
    reason: str = typer.Option("invalidated by hand", help="Recorded with the event."),
) -> None:
    """Drop one entry, a namespace, a model's or a prompt's cached answers."""
    n = sdk.invalidate_cache(
        project, entry=entry, namespace=namespace, model=model, prompt=prompt, reason=reason
    )
    typer.echo(f"invalidated {n} entries")


@cache.command("flag")
@handle_errors
def cache_flag(entry: int, project: str = ProjectOption, reason: str = typer.Option("wrong answer")) -> None:
    """Report cached answer ENTRY as wrong (it is dropped and counted)."""
    sdk.flag_cached_answer(project, entry, reason)
    typer.echo(f"flagged entry {entry}")


@cache.command("train-verifier")
@handle_errors
def cache_train_verifier(
    project: str = ProjectOption,
    alias: str = typer.Option("champion", help="The alias the new version gets."),
    output: Output = OutputOption,
) -> None:
    """Train the cache verifier in PROJECT: pairs as a versioned dataset, a tracked run, a
    registered model under ALIAS. Point gateway.cache.verifier at the printed reference."""
    from kosmos.genai.verifier.train import train_verifier
    from kosmos.platform.client import KosmosClient
    from kosmos.platform.settings import get_settings

    settings = get_settings()
    with KosmosClient(settings=settings) as client:
        result = train_verifier(project, settings, client, alias=alias)
    render(result, Output.json if output is Output.table else output)


@gateway.command("show")
@handle_errors
def gateway_show(project: str = ProjectOption, output: Output = OutputOption) -> None:
    render(sdk.gateway_policy(project), Output.json if output is Output.table else output)


@gateway.command("set")
@handle_errors
def gateway_set(
    project: str = ProjectOption,
    policy: Path = typer.Option(
        ..., "--policy", help="A JSON file: requests_per_minute, tokens_per_day, routes, cache."
    ),
    output: Output = OutputOption,
) -> None:
    """Replace the project's gateway policy."""
    body = read_json_object(policy, "--policy", "gateway policy fields")
    render(sdk.set_gateway_policy(project, body), Output.json if output is Output.table else output)
