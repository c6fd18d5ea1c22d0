"""Kosmos packages join the platform through the ``kosmos.plugins`` entry-point group.

Each entry point names a :class:`Plugin`. The control plane mounts its router
under ``/api/v1``, the data plane its data-plane router under ``/{project}``,
the CLI mounts its Typer group, and ``kosmos up`` starts its
embedded services. Platform imports nothing of the packages above it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

    from kosmos.platform.doctor import Check
    from kosmos.platform.settings import Settings

ENTRY_POINT_GROUP = "kosmos.plugins"
log = logging.getLogger(__name__)


class StartupRefused(RuntimeError):
    """Raised by a plugin's bootstrap when the platform cannot serve as configured: `kosmos up`
    stops with the message instead of running half-configured (other bootstrap failures are
    optional demo content and only warn)."""


@dataclass(frozen=True)
class EmbeddedService:
    """A process ``kosmos up`` starts for a plugin, e.g. the web UI."""

    name: str
    command: list[str]
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plugin:
    """What a Kosmos package contributes. Every part is optional and built lazily."""

    name: str
    router: Callable[[], APIRouter] | None = None
    dataplane_router: Callable[[], APIRouter] | None = None
    """Routes the data plane (Ray Serve's ingress, port 8000) serves under ``/{project}``; they
    run in the ingress replica with the same ``CallDep`` as control-plane routes."""
    cli: Callable[[], Any] | None = None
    """A Typer app mounted as ``kosmos <name>``, or a mapping of group name to Typer app."""
    embedded_services: Callable[[Settings], list[EmbeddedService]] | None = None
    bootstrap: Callable[[Settings], None] | None = None
    """Runs on every `kosmos up` once all services answer (seed demo data; must be idempotent).
    Raising ``StartupRefused`` stops `kosmos up`; any other failure is a warning."""
    bootstrap_after: tuple[str, ...] = ()
    """Plugins whose bootstrap must run before this one's (deployment needs training's model)."""
    migrations: str | None = None
    """A folder of Alembic versions (a branch depending on the platform's) for the plugin's tables."""
    models: str | None = None
    """The module that declares the plugin's tables on the platform's ``Base`` (imported on demand)."""
    sdk: dict[str, str] = field(default_factory=dict)
    """Notebook namespaces the plugin adds to ``import kosmos``: name -> ``module:attribute``."""
    doctor: Callable[[Settings], list[Check]] | None = None
    """Checks of the services the plugin's configuration needs, run by `kosmos doctor`."""
    deployment_kinds: dict[str, str] = field(default_factory=dict)
    """Kinds of deployment the plugin adds: the deployment-spec field that selects the kind (``llm``)
    -> ``module:attribute`` of an object with ``validate(dict) -> dict`` (raises ValueError) and
    ``build_targets(record, project, settings) -> list`` (Serve applications)."""


@dataclass(frozen=True)
class InstalledPlugin:
    plugin: Plugin
    package: str
    version: str


@lru_cache(maxsize=1)
def installed_plugins() -> tuple[InstalledPlugin, ...]:
    """Every plugin installed in this environment, sorted by name.

    A plugin that fails to import is an error naming the package: a platform
    with half its packages silently missing would be worse.
    """
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = ep.load()
        except Exception as exc:
            raise RuntimeError(f"Kosmos plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if not isinstance(plugin, Plugin):
            raise TypeError(f"entry point {ep.name!r} must name a kosmos.platform.plugins.Plugin")
        dist = ep.dist
        found.append(
            InstalledPlugin(
                plugin=plugin, package=dist.name if dist else "?", version=dist.version if dist else "?"
            )
        )
    return tuple(sorted(found, key=lambda p: p.plugin.name))


def import_models() -> None:
    """Import every plugin's table declarations, so ``Base.metadata`` knows the whole schema."""
    import importlib

    for installed in installed_plugins():
        if installed.plugin.models:
            importlib.import_module(installed.plugin.models)


def sdk_namespaces() -> dict[str, str]:
    """Every plugin's notebook namespaces (``kosmos.models`` -> ``kosmos.training.fluent:models``)."""
    found: dict[str, str] = {}
    for installed in installed_plugins():
        found.update(installed.plugin.sdk)
    return found


def bootstrap_order(plugins: list[Plugin]) -> list[Plugin]:
    """``plugins`` with each one after those it names in ``bootstrap_after`` (stable otherwise)."""
    ordered: list[Plugin] = []
    pending = list(plugins)
    while pending:
        done = {p.name for p in ordered}
        ready = [
            p
            for p in pending
            if all(a in done or a not in {q.name for q in plugins} for a in p.bootstrap_after)
        ]
        if not ready:
            names = ", ".join(p.name for p in pending)
            raise RuntimeError(f"plugins wait on each other to bootstrap: {names}")
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered


def deployment_kind(name: str) -> Any:
    """The deployment kind a plugin registered as ``name``; KeyError listing the kinds otherwise."""
    import importlib

    found = {k: v for p in installed_plugins() for k, v in p.plugin.deployment_kinds.items()}
    if name not in found:
        raise KeyError(f"no installed package adds {name!r} deployments; installed kinds: {sorted(found)}")
    module, attr = found[name].split(":")
    return getattr(importlib.import_module(module), attr)
