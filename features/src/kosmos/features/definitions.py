"""A feature repository's files, checked before anything of the project's registry changes.

:func:`load` runs the files where the settings say (:mod:`kosmos.features.code_runner`) and returns
their Feast objects; :func:`check` applies Kosmos's rules (names unique per kind, every file
source inside the project's repository, every ``kosmos.pipeline`` tag naming a function of the
files); :func:`trial_apply` lets Feast itself apply them to a scratch registry. Only then does
:meth:`kosmos.features.repo.FeatureRepo.apply_files` touch the real one.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kosmos.features.code_runner import runner_for
from kosmos.platform.errors import InvalidInput

if TYPE_CHECKING:
    from kosmos.features.repo import FeatureRepo

log = logging.getLogger(__name__)

FILE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\.py$")
MAX_FILES = 64
MAX_BYTES = 1 << 20
"""At most this much source in one repository (definitions and pipelines, not data)."""

PIPELINE_TAG = "kosmos.pipeline"


@dataclass
class Definitions:
    """What a repository's files define."""

    objects: list[Any] = field(default_factory=list)
    defined_in: dict[int, str] = field(default_factory=dict)
    """``id(object)`` -> the file that defines it (for error messages)."""
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Function name -> ``{"file", "inputs"}`` (inputs: its parameter names, i.e. table names)."""

    def of_kind(self, cls: type) -> list[Any]:
        return [o for o in self.objects if isinstance(o, cls)]


def check_files(files: dict[str, str]) -> dict[str, str]:
    """The files as given, or InvalidInput naming the one that breaks a rule."""
    if not files:
        raise InvalidInput.field("files", "a feature repository needs at least one .py file")
    if len(files) > MAX_FILES:
        raise InvalidInput.field("files", f"at most {MAX_FILES} files, got {len(files)}")
    for name in files:
        if not FILE_NAME.match(name):
            raise InvalidInput.field(f"files.{name}", "file names are Python module names ending in .py")
    size = sum(len(s.encode()) for s in files.values())
    if size > MAX_BYTES:
        raise InvalidInput.field("files", f"at most {MAX_BYTES} bytes of source, got {size}")
    return dict(sorted(files.items()))


def _from_proto(kind: str, data: bytes) -> Any:
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
    from feast.data_source import DataSource
    from feast.protos.feast.core import (
        DataSource_pb2,
        Entity_pb2,
        FeatureService_pb2,
        FeatureView_pb2,
        OnDemandFeatureView_pb2,
    )

    build = {
        "entity": (Entity, Entity_pb2.Entity),
        "data_source": (DataSource, DataSource_pb2.DataSource),
        "feature_view": (FeatureView, FeatureView_pb2.FeatureView),
        "on_demand_feature_view": (OnDemandFeatureView, OnDemandFeatureView_pb2.OnDemandFeatureView),
        "feature_service": (FeatureService, FeatureService_pb2.FeatureService),
    }
    cls, proto = build[kind]
    return cls.from_proto(proto.FromString(data))


def load(repo: FeatureRepo, files: dict[str, str]) -> Definitions:
    """Run the files in a child process; the Feast objects and pipelines they define."""
    request = {"command": "load", "repo": str(repo.path), "files": files}
    answer = runner_for(repo.settings).run(request, timeout_s=120)
    found = Definitions(pipelines=answer["pipelines"])
    for item in answer["objects"]:
        obj = _from_proto(item["kind"], base64.b64decode(item["proto"]))
        found.objects.append(obj)
        found.defined_in[id(obj)] = item["file"]
        for source in [obj, getattr(obj, "batch_source", None)]:
            _anchor(repo, source)
    return found


def _anchor(repo: FeatureRepo, source: Any) -> None:
    """A relative file source path made the repository's absolute one.

    Feast resolves relative paths against the repository in training sets but against the
    working directory in materialization (Feast 0.67), so the registry only holds absolute ones.
    """
    from feast import FileSource

    if isinstance(source, FileSource) and "://" not in source.path and not Path(source.path).is_absolute():
        source.file_options.uri = str(repo.path / source.path)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def source_path(repo: FeatureRepo, source: Any) -> Path:
    """Where a file source's parquet lives (a relative path is the repository's)."""
    from feast import FileSource

    return Path(os.path.normpath(FileSource.get_uri_for_file_path(str(repo.path), source.path)))


def check(repo: FeatureRepo, found: Definitions) -> None:
    """Kosmos's rules for a repository, or InvalidInput naming the definition that breaks one."""
    from feast import Entity, FeatureService, FeatureView, FileSource, OnDemandFeatureView
    from feast.data_source import DataSource

    problems: list[dict[str, str]] = []

    def problem(obj: Any, what: str, reason: str) -> None:
        file = found.defined_in.get(id(obj), "repository")
        problems.append({"field": f"{file}: {what}", "reason": reason})

    for cls in (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService):
        names: dict[str, int] = {}
        for obj in found.of_kind(cls):
            if cls is FeatureView and isinstance(obj, OnDemandFeatureView):
                continue
            names[obj.name] = names.get(obj.name, 0) + 1
        for name, count in names.items():
            if count > 1:
                problems.append({"field": f"{cls.__name__} {name}", "reason": f"defined {count} times"})
    readable = (repo.tables_dir.resolve(), repo.offline_dir.resolve())
    views = [v for v in found.of_kind(FeatureView) if not isinstance(v, OnDemandFeatureView)]
    sources = found.of_kind(DataSource) + [v.batch_source for v in views if v.batch_source is not None]
    for source in sources:
        if isinstance(source, FileSource):
            if "://" in source.path:
                problem(source, f"{source.name}.path", "a project's file sources are files of its repository")
            elif not any(_inside(source_path(repo, source).resolve(), d) for d in readable):
                reason = "must lie inside the repository's data/tables/ or data/offline/"
                problem(source, f"{source.name}.path", reason)
    entity_names = {e.name for e in found.of_kind(Entity)}
    for view in views:
        for entity in view.entities:
            if entity not in entity_names and entity != "__dummy":
                problem(view, f"{view.name}.entities", f"no entity {entity!r} is defined")
        pipeline = view.tags.get(PIPELINE_TAG)
        if pipeline is None:
            continue
        where = f"{view.name}.tags.{PIPELINE_TAG}"
        if pipeline not in found.pipelines:
            known = sorted(found.pipelines)
            problem(view, where, f"no function {pipeline!r} in the files; functions: {known}")
        if not isinstance(view.batch_source, FileSource):
            problem(view, where, "a pipeline writes a parquet file: the view's source must be a FileSource")
        elif not _inside(source_path(repo, view.batch_source).resolve(), repo.offline_dir.resolve()):
            problem(view, where, "a pipeline writes under data/offline/, never over a table or the stores")
    view_names = {v.name for v in found.objects if isinstance(v, FeatureView | OnDemandFeatureView)}
    for service in found.of_kind(FeatureService):
        for projection in service.feature_view_projections:
            if projection.name not in view_names:
                reason = f"no feature view {projection.name!r} is defined"
                problem(service, f"{service.name}.features", reason)
    if problems:
        summary = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        raise InvalidInput(f"the feature repository breaks its rules: {summary}", details=problems)


def trial_apply(repo: FeatureRepo, found: Definitions, config: dict[str, Any]) -> None:
    """Let Feast apply the objects to a scratch registry: its errors, before the real one changes."""
    from feast import FeatureStore

    with tempfile.TemporaryDirectory(prefix="kosmos-feast-trial-") as tmp:
        trial = {
            **config,
            "registry": {"path": str(Path(tmp) / "registry.db"), "cache_ttl_seconds": 0},
            "online_store": {"type": "sqlite", "path": str(Path(tmp) / "online.db")},
        }
        yaml_path = Path(tmp) / "feature_store.yaml"
        yaml_path.write_text(yaml.safe_dump(trial, sort_keys=False))
        try:
            FeatureStore(repo_path=str(repo.path), fs_yaml_file=yaml_path).apply(found.objects)
        except Exception as exc:
            raise InvalidInput.field("repository", f"Feast refused the definitions: {exc}") from exc
