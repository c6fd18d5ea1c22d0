"""Versioned datasets on DVC: one DVC repository per project, managed by Kosmos.

``$KOSMOS_HOME/projects/<project>/datasets`` is a git + DVC repository. Registering
a dataset writes ``<name>.parquet``, tracks it with ``dvc add``, commits the
``.dvc`` file and a ``<name>.meta.json`` (schema, rows, hash, lineage, author), tags
the commit ``<name>/v<N>`` and pushes the data to the DVC remote (a local folder by
default). It stays a plain DVC repository: ``dvc pull``, ``dvc status`` and
``dvc.api.read`` work on it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kosmos.platform.errors import InvalidInput, NotFound, ServiceUnavailable
from kosmos.platform.identity.names import name_problem
from kosmos.platform.settings import Settings

if TYPE_CHECKING:
    from dvc.repo import Repo

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass
class DatasetVersion:
    """What Kosmos records about one version of a dataset."""

    name: str
    version: int
    content_hash: str
    rows: int
    columns: list[str]
    schema: dict[str, str]
    created_by: str
    created_at: str
    feature_service: str | None = None
    feature_version: int | None = None
    """The version of the project's feature repository the frame was built with."""
    time_range: list[str] | None = None
    commit: str | None = None
    description: str = ""
    stats: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{self.name}/v{self.version}"

    @property
    def uri(self) -> str:
        """How MLflow and lineage name this version."""
        return f"kosmos-dataset://{self.name}/v{self.version}"


def _summary(frame: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    stats: dict[str, dict[str, float | None]] = {}
    for column in frame.columns:
        series = frame[column]
        entry: dict[str, float | None] = {"null_rate": float(series.isna().mean()) if len(series) else 0.0}
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            valid = series.dropna()
            for key, value in (("mean", valid.mean()), ("min", valid.min()), ("max", valid.max())):
                entry[key] = None if pd.isna(value) else float(value)
        stats[column] = entry
    return stats


class DatasetRepo:
    """One project's DVC repository of datasets."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.settings = settings
        self.project = project
        self.path = settings.projects_dir / project / "datasets"
        remote = settings.datasets.remote or str(settings.home / "dvc-remote")
        self.remote = f"{remote.rstrip('/')}/{project}"
        with _locks_guard:
            self._lock = _locks.setdefault(str(self.path), threading.Lock())

    # -- git and DVC plumbing -------------------------------------------------
    def _git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", "-c", "user.name=kosmos", "-c", "user.email=kosmos@localhost", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def _dvc(self) -> Repo:
        from dvc.repo import Repo  # heavy: imported only when a dataset is written

        return Repo(str(self.path))

    def ensure(self) -> None:
        """Create the git + DVC repository and its remote once."""
        if (self.path / ".dvc").is_dir():
            return
        from dvc.repo import Repo

        self.path.mkdir(parents=True, exist_ok=True)
        remote: dict[str, str] = {"url": self.remote}
        if "://" not in self.remote:
            Path(self.remote).mkdir(parents=True, exist_ok=True)
        elif self.settings.datasets.endpoint_url:
            remote["endpointurl"] = self.settings.datasets.endpoint_url
        if not (self.path / ".git").is_dir():
            self._git("init", "-q", "-b", "main")
        repo = Repo.init(str(self.path))
        with repo.config.edit() as conf:
            conf["remote"]["storage"] = remote
            conf["core"]["remote"] = "storage"
            conf["core"]["autostage"] = True
        repo.close()
        self._git("add", "-A")
        self._git("commit", "-q", "-m", f"Kosmos datasets of project {self.project}")

    # -- public API ---------------------------------------------------------------
    def register(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        created_by: str,
        feature_service: str | None = None,
        feature_version: int | None = None,
        description: str = "",
    ) -> DatasetVersion:
        """Version ``frame`` as the next version of ``name``; content that a version already has
        returns that version."""
        problem = name_problem(name)
        if problem:
            raise InvalidInput.field("name", problem)
        if frame.empty:
            raise InvalidInput.field("data", "the dataset has no rows")
        with self._lock:
            self.ensure()
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            content = buffer.getvalue()
            digest = hashlib.sha256(
                pd.util.hash_pandas_object(frame, index=False).values.tobytes()
                + ",".join(map(str, frame.columns)).encode()
            ).hexdigest()
            existing = self.versions(name)
            same = [v for v in existing if v.content_hash == digest]
            if same:  # any earlier version, not only the latest: one version per content
                return same[-1]
            time_range = None
            if "event_timestamp" in frame.columns and len(frame):
                ts = pd.to_datetime(frame["event_timestamp"], utc=True)
                time_range = [ts.min().isoformat(), ts.max().isoformat()]
            version = DatasetVersion(
                name=name,
                version=(existing[-1].version + 1) if existing else 1,
                content_hash=digest,
                rows=len(frame),
                columns=list(frame.columns),
                schema={c: str(t) for c, t in frame.dtypes.items()},
                created_by=created_by,
                created_at=datetime.now(UTC).isoformat(),
                feature_service=feature_service,
                feature_version=feature_version,
                time_range=time_range,
                description=description,
                stats=_summary(frame),
            )
            data_path = self.path / f"{name}.parquet"
            tmp = data_path.with_name(f".{data_path.name}.tmp")
            tmp.write_bytes(content)
            os.replace(tmp, data_path)
            (self.path / f"{name}.meta.json").write_text(json.dumps(asdict(version), indent=2))
            repo = self._dvc()
            try:
                repo.add(str(data_path))
                try:
                    repo.push()
                except Exception as exc:
                    raise ServiceUnavailable(f"DVC remote {self.remote} refused the push: {exc}") from exc
            finally:
                repo.close()
            self._git("add", f"{name}.parquet.dvc", f"{name}.meta.json", ".gitignore")
            self._git("commit", "-q", "-m", f"{name} v{version.version} by {created_by}")
            self._git("tag", version.tag)
            version.commit = self._git("rev-parse", "HEAD").strip()
            return version

    def names(self) -> list[str]:
        if not (self.path / ".git").is_dir():
            return []
        return sorted({t.rsplit("/v", 1)[0] for t in self._git("tag", "-l").split()})

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of ``name``, oldest first."""
        if not (self.path / ".git").is_dir():
            return []
        tags = [t for t in self._git("tag", "-l", f"{name}/v*").split() if t.rsplit("/v", 1)[1].isdigit()]
        out = []
        for tag in sorted(tags, key=lambda t: int(t.rsplit("/v", 1)[1])):
            meta = json.loads(self._git("show", f"{tag}:{name}.meta.json"))
            meta["commit"] = self._git("rev-list", "-n", "1", tag).strip()
            out.append(DatasetVersion(**meta))
        return out

    def get(self, name: str, version: int | None = None) -> DatasetVersion:
        versions = self.versions(name)
        if not versions:
            raise NotFound(f"dataset {name!r} not found in project {self.project!r}")
        if version is None:
            return versions[-1]
        for v in versions:
            if v.version == version:
                return v
        raise NotFound(
            f"dataset {name!r} has no version {version}; versions: {[v.version for v in versions]}"
        )

    def load(self, name: str, version: int | None = None) -> pd.DataFrame:
        """The data of one version, read through ``dvc.api`` (from the remote if need be)."""
        import dvc.api

        meta = self.get(name, version)
        try:
            raw = dvc.api.read(f"{name}.parquet", repo=str(self.path), rev=meta.tag, mode="rb")
        except Exception as exc:
            raise ServiceUnavailable(f"cannot read {meta.tag} from DVC: {exc}") from exc
        return pd.read_parquet(io.BytesIO(raw))

    def diff(self, name: str, a: int, b: int) -> dict[str, Any]:
        """Schema and summary-statistic changes from version ``a`` to version ``b``."""
        old, new = self.get(name, a), self.get(name, b)
        added = [c for c in new.columns if c not in old.schema]
        removed = [c for c in old.columns if c not in new.schema]
        retyped = {
            c: [old.schema[c], new.schema[c]]
            for c in new.columns
            if c in old.schema and old.schema[c] != new.schema[c]
        }
        stats = {}
        for column in new.columns:
            if column in old.stats:
                before, after = old.stats[column], new.stats.get(column, {})
                stats[column] = {
                    k: [before.get(k), after.get(k)] for k in after if before.get(k) != after.get(k)
                }
        return {
            "name": name,
            "from": a,
            "to": b,
            "rows": [old.rows, new.rows],
            "added_columns": added,
            "removed_columns": removed,
            "retyped_columns": retyped,
            "stats": {c: s for c, s in stats.items() if s},
        }
