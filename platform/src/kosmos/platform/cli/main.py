"""The `kosmos` command: the platform's own groups plus every plugin's."""

from __future__ import annotations

import typer

from kosmos.platform.cli import identity
from kosmos.platform.cli.output import Output, OutputOption, handle_errors, render
from kosmos.platform.client import KosmosClient
from kosmos.platform.credentials import save_credentials
from kosmos.platform.plugins import installed_plugins
from kosmos.platform.settings import get_settings

app = typer.Typer(
    name="kosmos",
    help="Kosmos: the ML and GenAI platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(identity.projects, name="projects")
app.add_typer(identity.teams, name="teams")
app.add_typer(identity.users, name="users")
app.add_typer(identity.tokens, name="tokens")
app.add_typer(identity.audit, name="audit")
app.add_typer(db, name="db")


@app.command()
@handle_errors
def login(
    token: str = typer.Option(..., prompt=True, hide_input=True, help="An API token (kos_...)."),
    url: str | None = typer.Option(None, help="Control-plane URL; default from settings."),
) -> None:
    """Check a token against the control plane and save it for later commands."""
    settings = get_settings()
    with KosmosClient(url=url or settings.api_url, token=token) as client:
        me = client.get("/whoami")
        save_credentials(settings.credentials_path, client.url, token)
    typer.echo(f"logged in to {client.url} as {me['user']}; saved in {settings.credentials_path}")


@app.command()
@handle_errors
def whoami(output: Output = OutputOption) -> None:
    """The user behind your token."""
    with KosmosClient() as client:
        render(client.get("/whoami"), output)


@app.command()
def up() -> None:
    """Start the embedded platform in the foreground (what `make run` does)."""
    from kosmos.platform.embedded import run_embedded
    from kosmos.platform.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    raise typer.Exit(run_embedded(settings))


@app.command("doctor")
def doctor(output: Output = OutputOption) -> None:
    """Check every configured service: reachable, migrated, writable, and the running data
    plane (exit 1 if one fails; a data plane not started yet is a warning)."""
    from kosmos.platform.doctor import dataplane_check, run_checks

    settings = get_settings()
    checks = [*run_checks(settings), dataplane_check(settings)]
    rows = [
        {"service": c.service, "target": c.target, "status": c.status, "detail": c.detail} for c in checks
    ]
    render(rows, output, ["service", "status", "target", "detail"])
    if any(c.status == "FAIL" for c in checks):
        raise typer.Exit(1)


@app.command("cluster")
@handle_errors
def cluster(output: Output = OutputOption) -> None:
    """The Ray cluster's nodes and its state: healthy, or degraded when a node is down."""
    with KosmosClient() as client:
        state = client.get("/cluster")
    if output is Output.json:
        render(state, output)
        return
    typer.echo(f"{state['status']}: {state['reason']} ({state['address']})")
    render(state["nodes"], output, ["node_id", "address", "alive", "head", "cpus", "gpus", "death_reason"])


@app.command("plugins")
@handle_errors
def plugins(output: Output = OutputOption) -> None:
    """The Kosmos packages installed here."""
    render(
        [{"name": p.plugin.name, "package": p.package, "version": p.version} for p in installed_plugins()],
        output,
    )


@db.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Migrate the metadata database (safe to run again)."""
    from kosmos.platform.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@db.command("current")
def db_current() -> None:
    """The revision the metadata database is at."""
    from kosmos.platform.db.engine import make_engine
    from kosmos.platform.db.migrate import current_revisions, head_revisions, pending_revisions

    engine = make_engine(get_settings().database_url)
    try:
        current = ",".join(sorted(current_revisions(engine))) or "none"
        pending = len(pending_revisions(engine))
        typer.echo(f"current: {current}  heads: {','.join(sorted(head_revisions()))}  pending: {pending}")
    finally:
        engine.dispose()


def _mount_plugins() -> None:
    for installed in installed_plugins():
        if installed.plugin.cli is not None:
            groups = installed.plugin.cli()
            if not isinstance(groups, dict):
                groups = {installed.plugin.name: groups}
            for name, group in groups.items():
                app.add_typer(group, name=name)


_mount_plugins()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
