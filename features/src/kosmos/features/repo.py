"""A Feast feature repository per Kosmos project, written and applied by Kosmos.

The folder is ``$KOSMOS_HOME/projects/<project>/feature_repo``: a
``feature_store.yaml`` generated from the Kosmos settings (stores are Feast's
own: SQLite or Redis online, file or SQL registry, parquet offline) and one or
more Python files of Feast definitions. It stays a valid Feast repository, so
``feast apply`` and ``feast materialize`` work on it from the command line.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
from feast.data_source import DataSource
from sqlalchemy.engine import make_url

from kosmos.platform.errors import InvalidInput, NotFound
from kosmos.platform.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "_templates"


def templates() -> dict[str, Path]:
    """The packaged feature-definition templates by name (``<name>`` -> ``_templates/<name>_features.py``)."""
    return {p.name.removesuffix("_features.py"): p for p in TEMPLATES.glob("*_features.py")}


_FEAST_KINDS = (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)


def feast_project_name(project: str) -> str:
    """Feast project names allow letters, digits and underscores only."""
    return project.replace("-", "_")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def feast_config(settings: Settings, project: str) -> dict[str, Any]:
    """The ``feature_store.yaml`` content for ``project`` under the current settings."""
    config: dict[str, Any] = {
        "project": feast_project_name(project),
        "provider": "local",
        "entity_key_serialization_version": 3,
        # DuckDB, Feast's own store over the same parquet files: its point-in-time join keeps
        # every entity row (the dask-based "file" store drops rows whose matches all fall
        # outside the TTL window), and it honours created timestamps of late data.
        "offline_store": {"type": "duckdb"},
        "auth": {"type": "no_auth"},
    }
    fs = settings.features
    if fs.registry == "sql":
        url = fs.registry_url or settings.database.url
        if not url or make_url(url).get_backend_name() != "postgresql":
            raise InvalidInput.field(
                "features.registry_url", "the sql registry needs a PostgreSQL URL (or database.url)"
            )
        config["registry"] = {
            "registry_type": "sql",
            "path": url,
            "cache_ttl_seconds": 60,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
    else:
        config["registry"] = {"path": "data/registry.db", "cache_ttl_seconds": 60}
    if fs.online_store == "redis":
        if not settings.redis.url:
            raise InvalidInput.field("redis.url", "the redis online store needs redis.url")
        url = make_url(settings.redis.url)
        conn = f"{url.host or '127.0.0.1'}:{url.port or 6379},db={url.database or 0}"
        if url.password:
            conn += f",password={url.password}"
        config["online_store"] = {"type": "redis", "connection_string": conn}
    else:
        config["online_store"] = {"type": "sqlite", "path": "data/online_store.db"}
    return config


CATALOG_TTL_S = 10.0
"""How long a process trusts what it read of a repository's registry (Feast's own cache: 60 s)."""


@dataclass(frozen=True)
class Catalog:
    """What a repository serves, as lookups check it."""

    features: dict[str, frozenset[str]]
    """Feature view (stored or on-demand) -> its feature names."""
    join_keys: dict[str, Any]
    """Entity join key -> its Feast ``ValueType``."""
    read_at: float
    services: dict[str, FeatureService] = field(default_factory=dict)
    """Feature services looked up so far (Feast's objects, read once per catalog)."""


class FeatureRepo:
    """One project's Feast repository: its files, its definitions, its FeatureStore."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.settings = settings
        self.project = project
        self.root = settings.projects_dir / project
        self.path = self.root / "feature_repo"
        self._store: FeatureStore | None = None
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    @property
    def offline_dir(self) -> Path:
        return self.path / "data" / "offline"

    @property
    def raw_dir(self) -> Path:
        """Raw data of the project (versioned with DVC by the training package)."""
        return self.root / "data" / "raw"

    def exists(self) -> bool:
        return (self.path / "feature_store.yaml").is_file()

    def init(self, template: str | None = None) -> None:
        """Write ``feature_store.yaml`` and, once, the definitions of ``template``."""
        _write_atomic(
            self.path / "feature_store.yaml",
            yaml.safe_dump(feast_config(self.settings, self.project), sort_keys=False),
        )
        (self.path / "data").mkdir(parents=True, exist_ok=True)
        if template is not None:
            known = templates()
            if template not in known:  # a key of a fixed registry, never a path
                raise InvalidInput.field("template", f"unknown template {template!r}; valid: {sorted(known)}")
            source = known[template]
            target = self.path / "features.py"
            if not target.exists():
                shutil.copyfile(source, target)
        self._store, self._catalog = None, None

    def require(self) -> None:
        if not self.exists():
            raise NotFound(
                f"project {self.project!r} has no feature repository yet; "
                "create one with `kosmos features init`"
            )

    def store(self) -> FeatureStore:
        """The project's FeatureStore, built once and shared by threads."""
        if self._store is not None:  # built, so the repository exists: no file check per lookup
            return self._store
        self.require()
        with self._lock:
            if self._store is None:
                self._store = FeatureStore(repo_path=str(self.path))
            return self._store

    def definitions(self) -> list[Any]:
        """Every Feast object the repository's Python files define."""
        found: list[Any] = []
        for file in sorted(self.path.glob("*.py")):
            name = f"_kosmos_feature_repo_{uuid.uuid4().hex}"
            spec = importlib.util.spec_from_file_location(name, file)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise InvalidInput.field(file.name, f"cannot load feature definitions: {exc}") from exc
            finally:
                sys.modules.pop(name, None)
            for value in vars(module).values():
                if isinstance(value, _FEAST_KINDS) and not any(value is f for f in found):
                    found.append(value)
        return found

    def apply(self) -> dict[str, list[str]]:
        """Register the definitions with Feast (what `feast apply` does); returns what is there."""
        self.require()
        objects = self.definitions()
        store = self.store()
        store.apply(objects)
        store.refresh_registry()
        self._catalog = None
        return self.describe()

    def catalog(self) -> Catalog:
        """The views' features and the entities' join keys that lookups are checked against.

        Feast rebuilds its Python objects from the registry's protos on every ``list_*`` call, a
        cost per request; this is read at most every ``CATALOG_TTL_S`` (and after ``apply``).
        """
        found = self._catalog
        if found is None or time.monotonic() - found.read_at > CATALOG_TTL_S:
            store = self.store()
            views = store.list_feature_views(allow_cache=True) + store.list_on_demand_feature_views(
                allow_cache=True
            )
            found = self._catalog = Catalog(
                features={v.name: frozenset(f.name for f in v.features) for v in views},
                join_keys={e.join_key: e.value_type for e in store.list_entities(allow_cache=True)},
                read_at=time.monotonic(),
            )
        return found

    def describe(self) -> dict[str, list[str]]:
        store = self.store()
        return {
            "entities": sorted(e.name for e in store.list_entities()),
            "feature_views": sorted(v.name for v in store.list_feature_views()),
            "on_demand_feature_views": sorted(v.name for v in store.list_on_demand_feature_views()),
            "feature_services": sorted(s.name for s in store.list_feature_services()),
        }


_repos: dict[tuple[str, str], FeatureRepo] = {}
_repos_lock = threading.Lock()


def feature_repo(settings: Settings, project: str) -> FeatureRepo:
    """The shared :class:`FeatureRepo` of ``project`` (one FeatureStore per process)."""
    key = (str(settings.home), project)
    with _repos_lock:
        repo = _repos.get(key)
        if repo is None or repo.settings is not settings:
            repo = _repos[key] = FeatureRepo(settings, project)
        return repo
