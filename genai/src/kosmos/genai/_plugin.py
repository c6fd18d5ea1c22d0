"""Registers kosmos-genai with the platform (entry point group `kosmos.plugins`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kosmos.platform.plugins import Plugin
from kosmos.platform.settings import Settings

if TYPE_CHECKING:
    from fastapi import APIRouter


def _router() -> APIRouter:  # Ray Serve and torch are imported only when the router is built
    from kosmos.genai.api import router

    return router


def _dataplane_router() -> APIRouter:
    from kosmos.genai.api import dataplane

    return dataplane


def _cli() -> dict[str, Any]:
    from kosmos.genai.cli import assistant, cache, gateway, prompts

    return {"prompts": prompts, "cache": cache, "gateway": gateway, "assistant": assistant}


def _bootstrap(settings: Settings) -> None:
    from kosmos.genai.demo import deploy_default_llm
    from kosmos.genai.semantic_cache import check_config
    from kosmos.platform.plugins import StartupRefused

    try:  # a cache that cannot work stops `kosmos up` with the setting to change, not a 500 later
        check_config(settings.gateway.cache, settings.database_url)
    except ValueError as exc:
        raise StartupRefused(str(exc)) from exc
    if settings.gateway.cache.verifier and settings.profile == "production":
        from kosmos.genai.verifier import Verifier

        # VerifierMissing stops `kosmos up` with the reference: never serve half-configured
        Verifier.load(settings.mlflow_tracking_uri, settings.gateway.cache.verifier, 0.5)
    deploy_default_llm(settings)


def _doctor(settings: Settings) -> list[Any]:
    from kosmos.genai.vector_index.pgvector import doctor_checks

    return doctor_checks(settings.gateway.cache, settings.database_url)


plugin = Plugin(
    name="genai",
    doctor=_doctor,
    router=_router,
    dataplane_router=_dataplane_router,
    cli=_cli,
    bootstrap=_bootstrap,
    bootstrap_after=("deployment",),
    migrations=str(Path(__file__).resolve().parent / "migrations"),
    models="kosmos.genai.models_db",
    deployment_kinds={"llm": "kosmos.genai.kind:LLM"},
    sdk={
        "llm": "kosmos.genai.fluent:llm",
        "prompts": "kosmos.genai.fluent:prompts",
        "cache": "kosmos.genai.fluent:cache",
        "assistant": "kosmos.genai.fluent:assistant",
    },
)
