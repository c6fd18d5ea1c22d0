"""A Feast feature repository per Kosmos project, written and applied by Kosmos.

The folder is ``$KOSMOS_HOME/projects/<project>/feature_repo``: a
``feature_store.yaml`` generated from the Kosmos settings (stores are Feast's
own: SQLite or Redis online, file or SQL registry, parquet offline), the Python
files of the project's Feast definitions and pipelines (applied from the client,
each apply a numbered version kept in ``feature_versions/``) and ``data/``: the
project's uploaded tables (``data/tables``) and what its pipelines write. It
stays a valid Feast repository, so ``feast apply`` and ``feast materialize``
work on it from the command line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from feast import FeatureService, FeatureStore, FeatureView, OnDemandFeatureView
from sqlalchemy.engine import make_url

from kosmos.features.user_code import kind_of
from kosmos.platform.errors import InvalidInput, NotFound
from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)

TEMPLATE_GROUP = "kosmos.features.templates"
"""Entry point group of feature-repository templates: name -> a package whose ``*.py`` files are one."""


def templates() -> dict[str, Path]:
    """The installed templates by name (each a folder of Feast definitions and pipelines)."""
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    found = {}
    for point in entry_points(group=TEMPLATE_GROUP):
        spec = find_spec(point.value)
        if spec is not None and spec.submodule_search_locations:
            found[point.name] = Path(next(iter(spec.submodule_search_locations)))
    return found


def template_files(name: str) -> dict[str, str]:
    """A template's files (its package's ``*.py`` but ``__init__.py``)."""
    known = templates()
    if name not in known:  # a key of a registry fed by entry points, never a path
        raise InvalidInput.field("template", f"unknown template {name!r}; valid: {sorted(known)}")
    return {p.name: p.read_text() for p in sorted(known[name].glob("*.py")) if p.name != "__init__.py"}


def feast_project_name(project: str) -> str:
    """Feast project names allow letters, digits and underscores only."""
    return project.replace("-", "_")


def _sources_of(view: Any) -> list[Any]:
    if isinstance(view, OnDemandFeatureView):
        return list(view.source_request_sources.values())
    if isinstance(view, FeatureView):
        return [s for s in (view.batch_source, view.stream_source) if s is not None]
    return []


def _digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name, source in sorted(files.items()):
        h.update(name.encode() + b"\0" + source.encode() + b"\0")
    return h.hexdigest()


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
    def tables_dir(self) -> Path:
        """The project's tables (``<name>.parquet``): what pipelines read and sources may name."""
        return self.path / "data" / "tables"

    @property
    def versions_dir(self) -> Path:
        """Every applied version's files (``<n>/``) and ``versions.json``, outside the Feast repo."""
        return self.root / "feature_versions"

    def exists(self) -> bool:
        return (self.path / "feature_store.yaml").is_file()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One apply or pipeline run at a time per project, across processes (a file lock)."""
        path = self.path / "data" / ".repo.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def init(self, template: str | None = None) -> None:
        """Write ``feature_store.yaml`` and, when nothing was applied yet, apply ``template``."""
        files = template_files(template) if template is not None else None
        _write_atomic(
            self.path / "feature_store.yaml",
            yaml.safe_dump(feast_config(self.settings, self.project), sort_keys=False),
        )
        for folder in (self.path / "data", self.tables_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._store, self._catalog = None, None
        if files is not None and self.current_version() is None:
            self.apply_files(files, applied_by=f"template {template}")

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

    def files(self) -> dict[str, str]:
        """The live definition files (what the current version applied)."""
        return {p.name: p.read_text() for p in sorted(self.path.glob("*.py"))}

    def schedule(self) -> int | None:
        """The project's own pipeline interval in minutes (0: never), or None: the platform's."""
        try:
            return json.loads((self.path / "data" / "schedule.json").read_text())["every_minutes"]
        except FileNotFoundError:
            return None

    def set_schedule(self, every_minutes: int | None) -> None:
        """Run the pipelines every ``every_minutes`` (0: only on demand; None: the platform's)."""
        path = self.path / "data" / "schedule.json"
        if every_minutes is None:
            path.unlink(missing_ok=True)
        else:
            _write_atomic(path, json.dumps({"every_minutes": every_minutes}))

    def versions(self) -> list[dict[str, Any]]:
        """Every applied version, oldest first: number, sha256, files, who and when."""
        try:
            return json.loads((self.versions_dir / "versions.json").read_text())
        except FileNotFoundError:
            return []

    def version_files(self, version: int) -> dict[str, str]:
        """The files version ``version`` applied."""
        folder = self.versions_dir / str(version)
        if version < 1 or not any(v["version"] == version for v in self.versions()):
            known = [v["version"] for v in self.versions()]
            raise NotFound(f"project {self.project!r} has no feature version {version}; versions: {known}")
        return {p.name: p.read_text() for p in sorted(folder.glob("*.py"))}

    def current_version(self) -> dict[str, Any] | None:
        found = self.versions()
        return found[-1] if found else None

    def apply(self) -> dict[str, Any]:
        """Apply the live files again (what `feast apply` in the folder does)."""
        self.require()
        files = self.files()
        if not files:
            raise NotFound(f"project {self.project!r} has no feature definitions; `kosmos features apply`")
        return self.apply_files(files, applied_by="kosmos")

    def apply_files(self, files: dict[str, str], *, applied_by: str) -> dict[str, Any]:
        """Check ``files`` and make them the project's definitions, as a new version.

        Nothing changes unless the files load in a child process, pass :func:`definitions.check`
        and apply to a scratch registry; definitions the new files no longer hold are removed, as
        `feast apply` does. The same content as the current version returns that version.
        """
        from kosmos.features import definitions

        self.require()
        files = definitions.check_files(files)
        digest = _digest(files)
        with self.lock():
            current = self.current_version()
            if current is not None and current["sha256"] == digest and self.files() == files:
                return {**self.describe(), "version": current["version"], "changed": False}
            found = definitions.load(self, files)
            definitions.check(self, found)
            definitions.trial_apply(self, found, feast_config(self.settings, self.project))
            number = (current["version"] if current else 0) + 1
            archive = self.versions_dir / str(number)
            shutil.rmtree(archive, ignore_errors=True)  # a crashed attempt at this number
            for name, source in files.items():
                _write_atomic(archive / name, source)
            previous = self.files()
            try:
                self._write_live(files)
                self._apply_to_feast(found.objects)
            except Exception:
                # the trial passed, so this is the store failing (a database down): put the last
                # good version back, files and, as far as the store lets us, its definitions
                self._write_live(previous)
                if previous:
                    try:
                        self._apply_to_feast(definitions.load(self, previous).objects)
                    except Exception:
                        log.exception("features of %s: last version not re-applied", self.project)
                raise
            record = {
                "version": number,
                "sha256": digest,
                "files": sorted(files),
                "pipelines": sorted(
                    v.tags[definitions.PIPELINE_TAG]
                    for v in found.objects
                    if isinstance(v, FeatureView) and definitions.PIPELINE_TAG in v.tags
                ),
                "applied_by": applied_by,
                "applied_at": datetime.now(UTC).isoformat(),
            }
            history = json.dumps([*self.versions(), record], indent=2)
            _write_atomic(self.versions_dir / "versions.json", history)
        return {**self.describe(), "version": number, "changed": True}

    def _write_live(self, files: dict[str, str]) -> None:
        for stale in self.path.glob("*.py"):
            if stale.name not in files:
                stale.unlink()
        for name, source in files.items():
            _write_atomic(self.path / name, source)

    def _apply_to_feast(self, objects: list[Any]) -> None:
        store = self.store()
        kept = {(kind_of(o), o.name) for o in objects}
        for view in objects:  # sources defined inside a view are registered with it
            for source in _sources_of(view):
                kept.add(("data_source", source.name))
        listed = (
            store.list_feature_services()
            + store.list_on_demand_feature_views()
            + store.list_feature_views()
            + store.list_entities()
            + store.list_data_sources()
        )
        stale = [o for o in listed if (kind_of(o), o.name) not in kept]
        store.apply(objects, objects_to_delete=stale, partial=False)
        store.refresh_registry()
        self._catalog = None

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

    def describe(self) -> dict[str, Any]:
        """The names of every definition, by kind, and the current version."""
        store = self.store()
        current = self.current_version()
        return {
            "version": current["version"] if current else None,
            "schedule_minutes": self.schedule(),
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
