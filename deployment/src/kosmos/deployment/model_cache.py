"""A node-local model cache in front of the MLflow artifact store (fast model loading).

Registered model versions never change, so ``<model>/<version>`` names one content
for good. The first load downloads the version's artifacts (MLflow fetches the
files in parallel), hashes them, and moves the folder atomically into
``blobs/<sha256>``; an index maps the version to its hash. Later loads on the
same node, by any replica, read the local folder: no network, no artifact store.
Two versions with the same content share one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

if TYPE_CHECKING:
    from kosmos.platform.settings import Settings


@dataclass(frozen=True)
class CachedModel:
    path: Path
    content_hash: str
    warm: bool
    seconds: float


def tree_hash(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


class ModelCache:
    """``fetch(model_uri, key)``: a local folder with the model, downloading it at most once per node."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "index").mkdir(parents=True, exist_ok=True)

    def _index_file(self, key: str) -> Path:
        return self.root / "index" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def lookup(self, key: str) -> Path | None:
        """The cached folder for ``key`` if this node has it complete, else None."""
        index = self._index_file(key)
        try:
            entry = json.loads(index.read_text())
        except (OSError, ValueError):
            return None
        folder = self.root / "blobs" / entry["sha256"]
        return folder if (folder / ".complete").exists() else None

    def fetch(self, model_uri: str, key: str, tracking_uri: str | None = None) -> CachedModel:
        """The model at ``model_uri`` (``models:/<project>.<model>/<version>``) as a local folder."""
        started = time.perf_counter()
        hit = self.lookup(key)
        if hit is not None:
            return CachedModel(hit, hit.name, True, time.perf_counter() - started)
        with FileLock(str(self._index_file(key)) + ".lock", timeout=600):
            hit = self.lookup(key)  # another replica on this node may have filled it meanwhile
            if hit is not None:
                return CachedModel(hit, hit.name, True, time.perf_counter() - started)
            folder = self._download(model_uri, tracking_uri)
            self.remember(key, folder)
            return CachedModel(folder, folder.name, False, time.perf_counter() - started)

    def _download(self, model_uri: str, tracking_uri: str | None) -> Path:
        import mlflow.artifacts
        from mlflow.tracking import MlflowClient

        staging = Path(tempfile.mkdtemp(prefix="download-", dir=self.root))
        try:
            source = model_uri
            if model_uri.startswith("models:/"):  # a registry URI: ask that registry where it lives
                name, version = model_uri.removeprefix("models:/").rsplit("/", 1)
                client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
                source = client.get_model_version_download_uri(name, version)
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=str(staging), tracking_uri=tracking_uri
                )
            )
            sha = tree_hash(local)
            target = self.root / "blobs" / sha
            if not (target / ".complete").exists():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(local, target)  # same filesystem: atomic
                (target / ".complete").touch()
            return target
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def remember(self, key: str, folder: Path) -> None:
        """Point ``key`` at a complete cached folder (atomic write of the index entry)."""
        index = self._index_file(key)
        tmp = index.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "sha256": folder.name}))
        os.replace(tmp, index)


def _fill(settings: dict[str, Any], model_uri: str) -> str:
    from kosmos.platform.settings import Settings

    resolved = Settings(**settings)
    tracking = resolved.mlflow_tracking_uri
    cached = ModelCache(resolved.home / "model-cache").fetch(
        model_uri, key=f"{tracking}|{model_uri}", tracking_uri=tracking
    )
    return cached.content_hash


def prefetch(settings: Settings, project: str, model: str, version: int) -> list[Any]:
    """Fill every alive node's cache with a model version, in the background (one Ray task per node).

    Called when a deployment is created or an alias moves, so replicas that start
    later, on any node, load warm. Returns the task refs (callers may ignore them).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from kosmos.platform.ray_cluster import connect

    connect(settings)
    uri = f"models:/{project}.{model}/{version}"
    task = ray.remote(num_cpus=0.1, max_retries=1)(_fill)
    payload = settings.model_dump(mode="json")
    return [
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
            payload, uri
        )
        for node in ray.nodes()
        if node["Alive"]
    ]
