"""Registers kosmos-features with the platform (entry point group `kosmos.plugins`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from kosmos.platform.plugins import EmbeddedService, Plugin
from kosmos.platform.settings import Settings

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter


def _router() -> APIRouter:  # Feast is imported only when the router is built
    from kosmos.features.api import router

    return router


def _dataplane_router() -> APIRouter:
    from kosmos.features.api import dataplane

    return dataplane


def _cli() -> typer.Typer:
    from kosmos.features.cli import app

    return app


def _bootstrap(settings: Settings) -> None:
    from kosmos.features.demo.setup import setup_demo

    setup_demo(settings)


def _services(settings: Settings) -> list[EmbeddedService]:
    return [  # always: a project's own schedule applies even when the platform's default is 0
        EmbeddedService(name="feature scheduler", command=[sys.executable, "-m", "kosmos.features.scheduler"])
    ]


plugin = Plugin(
    name="features",
    router=_router,
    dataplane_router=_dataplane_router,
    cli=_cli,
    bootstrap=_bootstrap,
    embedded_services=_services,
    sdk={"features": "kosmos.features"},
)
