"""Registers kosmos-training with the platform (entry point group `kosmos.plugins`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kosmos.platform.plugins import Plugin
from kosmos.platform.settings import Settings

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter


def _router() -> APIRouter:  # MLflow and DVC are imported only when the router is built
    import os

    # a control plane answers in seconds: fail fast when MLflow is down (its defaults wait minutes)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    from kosmos.training.api import router

    return router


def _cli() -> dict[str, typer.Typer]:
    from kosmos.training.cli import datasets, models, runs

    return {"datasets": datasets, "runs": runs, "models": models}


def _bootstrap(settings: Settings) -> None:
    from kosmos.training.demo import train_demo_model

    outcome = train_demo_model(settings)
    if outcome:
        print(f"demo model: {outcome}", flush=True)


plugin = Plugin(
    name="training",
    router=_router,
    cli=_cli,
    bootstrap=_bootstrap,
    bootstrap_after=("features",),
    sdk={
        "datasets": "kosmos.training.fluent:datasets",
        "models": "kosmos.training.fluent:models",
        "training": "kosmos.training",
    },
)
