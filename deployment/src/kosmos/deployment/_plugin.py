"""Registers kosmos-deployment with the platform (entry point group `kosmos.plugins`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kosmos.platform.plugins import EmbeddedService, Plugin
from kosmos.platform.settings import Settings

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter


def _router() -> APIRouter:  # Ray Serve is imported only when the router is built
    from fastapi import APIRouter

    from kosmos.deployment.api import router as deployments
    from kosmos.deployment.decisions_api import router as decisions

    router = APIRouter()
    router.include_router(deployments)
    router.include_router(decisions)
    return router


def _dataplane_router() -> APIRouter:
    from kosmos.deployment.dataplane_api import router

    return router


def _cli() -> typer.Typer:
    from kosmos.deployment.cli import app, explain_app, replay_app

    return {"deploy": app, "explain": explain_app, "replay": replay_app}


def _services(settings: Settings) -> list[EmbeddedService]:
    return [
        EmbeddedService(
            name="deployment reconciler", command=[sys.executable, "-m", "kosmos.deployment.reconciler"]
        )
    ]


def _bootstrap(settings: Settings) -> None:
    from kosmos.deployment.demo import deploy_demo_model

    deploy_demo_model(settings)


plugin = Plugin(
    name="deployment",
    router=_router,
    dataplane_router=_dataplane_router,
    cli=_cli,
    embedded_services=_services,
    bootstrap=_bootstrap,
    bootstrap_after=("training",),
    migrations=str(Path(__file__).resolve().parent / "migrations"),
    models="kosmos.deployment.models",
    sdk={
        "deployments": "kosmos.deployment.fluent:deployments",
        "decisions": "kosmos.deployment.fluent:decisions",
    },
)
