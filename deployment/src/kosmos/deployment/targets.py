"""The Ray Serve applications a deployment record runs as: one per live model version and its
router, pinned to a code version so an unchanged replica is never restarted by an apply."""

from __future__ import annotations

import hashlib
import importlib.metadata
from typing import Any

from kosmos.deployment import rollouts
from kosmos.deployment.models import DeploymentRecord
from kosmos.platform.errors import KosmosError
from kosmos.platform.settings import Settings

CODE_VERSION = f"kosmos-{importlib.metadata.version('kosmos-deployment')}"
"""Serve's code version: without one every apply would restart every replica; with it, a
traffic change reconfigures the router in place and a replica count change only scales."""


def live_versions(record: DeploymentRecord) -> list[int]:
    """Versions that must be running: stable, candidate, and those retiring after a switch."""
    versions = [record.stable_version, record.candidate_version, *(record.details or {}).get("retiring", [])]
    return sorted({int(v) for v in versions if v is not None})


def pinned(deployment: Any, code_version: str) -> Any:
    """Give a deployment a fixed code version (Serve otherwise draws a random one per apply).

    Serve's imperative API no longer takes ``version=``, but still honours the
    deployment's own ``_version`` (ray/serve/_private/client.py, deploy_applications).
    """
    deployment._version = code_version
    return deployment


def _options_key(spec: Any) -> str:
    """Changing the optimization options must restart the replicas (the code version says so)."""
    options = spec.optimization.model_dump_json() if spec.optimization else ""
    return hashlib.sha256(options.encode()).hexdigest()[:8]


def scaling_options(spec: Any) -> dict[str, Any]:
    """Ray Serve's replica count or autoscaling config, and placement, for a deployment spec."""
    options: dict[str, Any] = (
        {"autoscaling_config": spec.autoscaling.model_dump()}
        if spec.autoscaling
        else {"num_replicas": spec.replicas}
    )
    if spec.max_replicas_per_node:
        options["max_replicas_per_node"] = spec.max_replicas_per_node
    return options


def router_options(spec: Any) -> dict[str, Any]:
    """The router runs once, or on two nodes when the spec spreads replicas for availability."""
    if not spec.max_replicas_per_node:
        return {}
    replicas = spec.autoscaling.min_replicas if spec.autoscaling else spec.replicas
    return {"num_replicas": min(2, replicas), "max_replicas_per_node": 1}


def build_targets(record: DeploymentRecord, project: str, settings: Settings) -> list[Any]:
    """Serve applications for ``record``: a classic model's here, other kinds' by the plugin adding them."""
    from kosmos.platform.plugins import deployment_kind

    if rollouts.spec_of(record).llm is None:
        return build_model_targets(record, project, settings)
    try:
        kind = deployment_kind("llm")
    except KeyError as exc:
        raise KosmosError(str(exc)) from exc
    return kind.build_targets(record, project, settings)


def build_model_targets(record: DeploymentRecord, project: str, settings: Settings) -> list[Any]:
    """Serve applications for a classic model: its router, and one application per live version."""
    from ray.serve.api import RunTarget

    from kosmos.deployment.serving import ModelServer, TrafficRouter, model_app_name

    spec = rollouts.spec_of(record)
    scaling = scaling_options(spec)
    settings_dict = settings.model_dump(mode="json")
    batching = {"max_batch_size": spec.max_batch_size, "batch_wait_ms": spec.batch_wait_ms}
    app = rollouts.app_name(project, record.name)
    targets = [
        RunTarget(
            pinned(
                ModelServer.options(
                    name="model",
                    ray_actor_options={"num_cpus": spec.num_cpus},
                    user_config=batching,
                    **scaling,
                ),
                f"{CODE_VERSION}-{spec.model}-{v}-{_options_key(spec)}",
            ).bind(
                settings_dict,
                project,
                spec.model,
                v,
                spec.optimization.model_dump() if spec.optimization else None,
            ),
            name=model_app_name(app, v),
            route_prefix=None,
        )
        for v in live_versions(record)
    ]
    router = pinned(
        TrafficRouter.options(
            name="router", user_config=rollouts.router_config(record), **router_options(spec)
        ),
        CODE_VERSION,
    ).bind(settings_dict, project, record.name, spec.feature_service, app)
    return [*targets, RunTarget(router, name=app, route_prefix=None)]
