"""Registers kosmos-training with the platform (entry point group `kosmos.plugins`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kosmos.platform.plugins import Plugin

if TYPE_CHECKING:
    from fastapi import APIRouter


def _router() -> APIRouter:  # MLflow and DVC are imported only when the router is built
    from kosmos.training.api import router

    return router


plugin = Plugin(name="training", router=_router)
