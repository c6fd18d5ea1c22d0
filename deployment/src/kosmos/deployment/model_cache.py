"""A node-local model cache in front of the MLflow artifact store (fast model loading).

Registered model versions never change, so ``<model>/<version>`` names one content
for good. The first load downloads the version's artifacts (MLflow fetches the
files in parallel), hashes them in 64 MiB blocks on every core, and moves the folder
atomically into ``blobs/<content hash>``; an index maps the version to its hash. Later
loads on the same node, by any replica, read the local folder: no network, no
artifact store. Two versions with the same content share one folder.

Every load checks the entry against its manifest (sizes always; block checksums by
default, ``deployment.model_cache_verify``), so a file damaged on disk is found,
dropped and fetched again instead of being served. Past ``deployment.model_cache_max_gb``
the least recently used entries are evicted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from filelock import FileLock

if TYPE_CHECKING:
    from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)

BLOCK = 64 << 20  # a file's blocks hash (and verify) in parallel: a large weights file uses every core
MANIFEST = ".complete"  # written last: an entry without it is a download that did not finish
Manifest = dict[str, dict[str, Any]]  # relative path -> {"size": bytes, "blocks": [sha256 hex, ...]}


@dataclass(frozen=True)
class CachedModel:
    path: Path
    content_hash: str
    warm: bool
    seconds: float
    verify_seconds: float = 0.0


class CorruptEntry(Exception):
    """A cached file no longer matches the manifest written when it was fetched."""


def _hash_block(path: Path, offset: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        left = BLOCK
        while left and (chunk := f.read(min(left, 8 << 20))):
            digest.update(chunk)  # hashlib releases the GIL on large buffers: threads use every core
            left -= len(chunk)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p != root / MANIFEST)


def _block_hashes(root: Path, sizes: dict[str, int]) -> dict[str, list[str]]:
    jobs = [(rel, offset) for rel, size in sizes.items() for offset in range(0, max(size, 1), BLOCK)]
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        digests = list(pool.map(lambda job: _hash_block(root / job[0], job[1]), jobs))
    out: dict[str, list[str]] = {rel: [] for rel in sizes}
    for (rel, _), digest in zip(jobs, digests, strict=True):
        out[rel].append(digest)
    return out


def build_manifest(root: Path) -> Manifest:
    """Every file's size and per-block SHA-256, by path relative to ``root``."""
    sizes = {str(p.relative_to(root)): p.stat().st_size for p in _files(root)}
    blocks = _block_hashes(root, sizes)
    return {rel: {"size": sizes[rel], "blocks": blocks[rel]} for rel in sizes}


def content_hash(manifest: Manifest) -> str:
    """The entry's name: SHA-256 over the manifest (paths, sizes and block hashes)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def verify(root: Path, manifest: Manifest, mode: Literal["checksum", "size"] = "checksum") -> None:
    """Raise CorruptEntry unless ``root`` holds exactly the manifest's files (and, with
    ``checksum``, the same bytes)."""
    sizes = {}
    for p in _files(root):
        sizes[str(p.relative_to(root))] = p.stat().st_size
    expected = {rel: entry["size"] for rel, entry in manifest.items()}
    if sizes != expected:
        changed = sorted(set(sizes.items()) ^ set(expected.items()))
        raise CorruptEntry(f"files or sizes differ from the manifest: {[rel for rel, _ in changed][:5]}")
    if mode == "checksum":
        blocks = _block_hashes(root, sizes)
        bad = [rel for rel, entry in manifest.items() if blocks[rel] != entry["blocks"]]
        if bad:
            raise CorruptEntry(f"checksum mismatch in {bad[:5]}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ModelCache:
    """``fetch(model_uri, key)``: a local folder with the model, downloading it at most once per node."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int | None = None,
        verify: Literal["checksum", "size"] = "checksum",
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.verify_mode = verify
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "index").mkdir(parents=True, exist_ok=True)

    def _index_file(self, key: str) -> Path:
        return self.root / "index" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def _entry(self, key: str) -> tuple[Path, Manifest] | None:
        try:
            sha = json.loads(self._index_file(key).read_text())["sha256"]
            folder = self.root / "blobs" / sha
            return folder, json.loads((folder / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def lookup(self, key: str) -> Path | None:
        """The cached folder for ``key`` if this node has it complete, else None (no checksum)."""
        entry = self._entry(key)
        return entry[0] if entry is not None else None

    def _checked(self, key: str) -> tuple[Path, float] | None:
        """The entry, verified; a damaged one is dropped (and so fetched again)."""
        entry = self._entry(key)
        if entry is None:
            return None
        folder, manifest = entry
        started = time.perf_counter()
        try:
            verify(folder, manifest, self.verify_mode)
        except (CorruptEntry, OSError) as exc:
            model = key.rsplit("|", 1)[-1]  # the key's tracking URI stays out of the log
            log.warning("model cache entry %s of %s is damaged (%s): fetching again", folder.name, model, exc)
            self._drop(folder)
            return None
        os.utime(folder / MANIFEST)  # recently used: the last to be evicted
        return folder, time.perf_counter() - started

    def fetch(self, model_uri: str, key: str, tracking_uri: str | None = None) -> CachedModel:
        """The model at ``model_uri`` (``models:/<project>.<model>/<version>``) as a local folder."""
        started = time.perf_counter()
        hit = self._checked(key)
        if hit is not None:
            return CachedModel(hit[0], hit[0].name, True, time.perf_counter() - started, hit[1])
        with FileLock(str(self._index_file(key)) + ".lock", timeout=600):
            hit = self._checked(key)  # another replica on this node may have filled it meanwhile
            if hit is not None:
                return CachedModel(hit[0], hit[0].name, True, time.perf_counter() - started, hit[1])
            folder = self._download(model_uri, tracking_uri)
            self.remember(key, folder)
        self.evict(keep=folder.name)
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
            return self.add(local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def add(self, local: Path) -> Path:
        """Move a downloaded folder into the cache (same filesystem: atomic); returns its entry."""
        manifest = build_manifest(local)
        target = self.root / "blobs" / content_hash(manifest)
        if self._complete(target):
            return target
        self._drop(target)
        os.replace(local, target)
        _write_atomic(target / MANIFEST, json.dumps({"files": manifest, "fetched_at": time.time()}))
        return target

    @staticmethod
    def _complete(folder: Path) -> bool:
        return (folder / MANIFEST).exists()

    def _drop(self, folder: Path) -> None:
        """Remove an entry: renamed first, so no reader ever sees it half-deleted."""
        if not folder.exists():
            return
        trash = self.root / f"trash-{folder.name}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            os.replace(folder, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def remember(self, key: str, folder: Path) -> None:
        """Point ``key`` at a complete cached folder (atomic write of the index entry)."""
        _write_atomic(self._index_file(key), json.dumps({"key": key, "sha256": folder.name}))

    def entries(self) -> list[tuple[Path, int, float]]:
        """Complete entries as (folder, bytes, last used), least recently used first."""
        out = []
        for folder in (self.root / "blobs").iterdir():
            try:
                manifest = json.loads((folder / MANIFEST).read_text())["files"]
                used = (folder / MANIFEST).stat().st_mtime
            except (OSError, ValueError, KeyError):
                continue
            out.append((folder, sum(e["size"] for e in manifest.values()), used))
        return sorted(out, key=lambda entry: entry[2])

    def evict(self, keep: str | None = None) -> list[str]:
        """Drop least recently used entries until the cache fits ``max_bytes``; returns their hashes.

        ``keep`` (the entry just fetched) stays even when it alone is over the limit. A replica
        that already opened an evicted entry's files keeps reading them (Linux keeps unlinked
        files alive); one that had not yet opened them fails to load and fetches again on restart.
        """
        if self.max_bytes is None:
            return []
        evicted = []
        with FileLock(str(self.root / "evict.lock"), timeout=600):
            entries = self.entries()
            total = sum(size for _, size, _ in entries)
            for folder, size, _ in entries:
                if total <= self.max_bytes:
                    break
                if folder.name == keep:
                    continue
                self._drop(folder)
                evicted.append(folder.name)
                total -= size
            if total > self.max_bytes:
                log.warning("model cache holds %d bytes, over its limit of %d", total, self.max_bytes)
        if evicted:
            log.info("model cache evicted %s", evicted)
        return evicted


NODE_CACHE_DIR = "KOSMOS_DEPLOYMENT__MODEL_CACHE_DIR"


def node_cache(settings: Settings) -> ModelCache:
    """This node's model cache, as the deployment settings configure it.

    Replicas get the control plane's settings, but the cache is the node's: a Ray node's
    own ``KOSMOS_DEPLOYMENT__MODEL_CACHE_DIR`` comes first.
    """
    deployment = settings.deployment
    limit = deployment.model_cache_max_gb
    root = os.environ.get(NODE_CACHE_DIR) or deployment.model_cache_dir or settings.home / "model-cache"
    return ModelCache(
        Path(root),
        max_bytes=int(limit * (1 << 30)) if limit else None,
        verify=deployment.model_cache_verify,
    )


def fetch_version(settings: Settings, project: str, model: str, version: int) -> CachedModel:
    """A registered model version as a folder in this node's cache."""
    uri = f"models:/{project}.{model}/{version}"
    tracking = settings.mlflow_tracking_uri
    return node_cache(settings).fetch(uri, key=f"{tracking}|{uri}", tracking_uri=tracking)


def _fill(settings: dict[str, Any], project: str, model: str, version: int) -> str:
    from kosmos.platform.settings import Settings

    return fetch_version(Settings(**settings), project, model, version).content_hash


def prefetch(settings: Settings, project: str, model: str, version: int) -> list[Any]:
    """Fill every alive node's cache with a model version, in the background (one Ray task per node).

    Called when a deployment is created or its versions change; the reconciler starts
    replicas once these tasks are done (or failed, or past ``deployment.prefetch_wait_seconds``),
    so replicas on any node load warm. Returns the task refs.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from kosmos.platform.ray_cluster import connect

    connect(settings)
    # no CPU reserved: a download waits on the disk and the network, and a cluster whose CPUs are all
    # held by replicas must still fill its caches, or the new version never starts
    task = ray.remote(num_cpus=0, max_retries=1)(_fill)
    payload = settings.model_dump(mode="json")
    return [
        task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
            payload, project, model, version
        )
        for node in ray.nodes()
        if node["Alive"]
    ]
