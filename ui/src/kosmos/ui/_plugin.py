"""Registers the web UI: `kosmos ui`, and the Streamlit process `kosmos up` starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from kosmos.platform.plugins import EmbeddedService, Plugin
from kosmos.platform.settings import Settings, get_settings

APP_PATH = Path(__file__).resolve().parent / "app.py"


def streamlit_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(settings.ui.port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        # a blue accent: Streamlit's red makes a selected option look like an error
        "--theme.primaryColor",
        "#1d4ed8",
    ]


def _services(settings: Settings) -> list[EmbeddedService]:
    return [
        EmbeddedService(
            name="web UI", command=streamlit_command(settings), url=f"http://127.0.0.1:{settings.ui.port}"
        )
    ]


def _cli() -> typer.Typer:
    app = typer.Typer(help="The web UI.", invoke_without_command=True)

    @app.callback()
    def ui() -> None:
        """Start the web UI in the foreground."""
        raise typer.Exit(subprocess.call(streamlit_command(get_settings())))

    return app


plugin = Plugin(name="ui", cli=_cli, embedded_services=_services)
