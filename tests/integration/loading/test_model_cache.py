"""The node-local model cache against a real MLflow server (artifacts proxied over HTTP, as
`kosmos up` runs it): warm hits, damage found by checksum and fetched again, eviction under a
size limit, a download that died half-way, and each node's own cache folder."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from kosmos.deployment.model_cache import MANIFEST, NODE_CACHE_DIR, ModelCache, node_cache
from kosmos.platform.settings import Settings

MB = 1 << 20


class Weights(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        self.weights = np.load(context.artifacts["weights"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return model_input["x"].to_numpy() * float(self.weights[0])

    def __getstate__(self) -> dict[str, Any]:  # MLflow loads the model to check the example: keep
        return {}  # the weights out of the pickle, they are the artifact


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, free_port) -> Iterator[dict[str, Any]]:
    """A real `mlflow server` with three registered versions of about 3, 3 and 6 MB."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (root / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
        mlflow.set_tracking_uri(url)
        sizes = {1: 3, 2: 3, 3: 6}
        for version, mb in sizes.items():
            weights = root / f"w{version}.npy"
            np.save(weights, np.random.default_rng(version).random(mb * MB // 8))
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=Weights(), artifacts={"weights": str(weights)},
                    input_example=pd.DataFrame({"x": [1.0]}), pip_requirements=["mlflow"],
                )  # fmt: skip
            assert mlflow.register_model(info.model_uri, "cachetest.m").version == str(version)
        yield {"url": url, "root": root}
    finally:
        mlflow.set_tracking_uri(None)
        server.terminate()
        server.wait(timeout=30)


def fetch(cache: ModelCache, url: str, version: int):
    uri = f"models:/cachetest.m/{version}"
    return cache.fetch(uri, key=f"{url}|{uri}", tracking_uri=url)


def weights_file(folder: Path) -> Path:
    [path] = [p for p in folder.rglob("*.npy")]
    return path


def test_the_second_load_reads_the_node_cache_and_serves_the_same_model(registry, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    cold = fetch(cache, registry["url"], 1)
    warm = fetch(cache, registry["url"], 1)
    assert (cold.warm, warm.warm) == (False, True)
    assert warm.path == cold.path and warm.content_hash == cold.path.name
    assert warm.seconds < cold.seconds
    model = mlflow.pyfunc.load_model(str(warm.path))
    expected = 2 * np.load(weights_file(warm.path))[0]
    assert model.predict(pd.DataFrame({"x": [2.0]}))[0] == pytest.approx(expected)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(("download-", "trash-"))]


def test_a_damaged_entry_is_found_by_checksum_and_fetched_again(registry, tmp_path: Path, caplog) -> None:
    cache = ModelCache(tmp_path / "cache")
    first = fetch(cache, registry["url"], 1)
    path = weights_file(first.path)
    good = path.read_bytes()
    with path.open("r+b") as f:  # one flipped byte, same size: only a checksum can see it
        f.seek(len(good) // 2)
        f.write(bytes([good[len(good) // 2] ^ 0xFF]))
    assert ModelCache(tmp_path / "cache", verify="size").lookup(f"{registry['url']}|models:/cachetest.m/1")
    with caplog.at_level(logging.WARNING, logger="kosmos.deployment.model_cache"):
        again = fetch(cache, registry["url"], 1)
    assert not again.warm, "the damaged entry was served"
    assert "checksum mismatch" in caplog.text and registry["url"] not in caplog.text
    assert weights_file(again.path).read_bytes() == good
    assert fetch(cache, registry["url"], 1).warm


def test_a_truncated_file_is_found_even_by_the_size_check(registry, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache", verify="size")
    first = fetch(cache, registry["url"], 2)
    path = weights_file(first.path)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    again = fetch(cache, registry["url"], 2)
    assert not again.warm and weights_file(again.path).stat().st_size == size


def test_a_download_that_died_half_way_is_a_miss_not_a_broken_model(registry, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache")
    first = fetch(cache, registry["url"], 1)
    (first.path / MANIFEST).unlink()  # what a kill between the move and the manifest leaves
    again = fetch(cache, registry["url"], 1)
    assert not again.warm and (again.path / MANIFEST).exists()
    assert mlflow.pyfunc.load_model(str(again.path)) is not None


def test_least_recently_used_versions_are_evicted_past_the_size_limit(registry, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache", max_bytes=10 * MB)
    v1 = fetch(cache, registry["url"], 1)  # 3 MB
    v2 = fetch(cache, registry["url"], 2)  # 3 MB
    time.sleep(0.05)
    assert fetch(cache, registry["url"], 1).warm  # used again: v2 is now the least recent
    v3 = fetch(cache, registry["url"], 3)  # 6 MB: 12 in all, over the limit
    assert {folder.name for folder, _, _ in cache.entries()} == {v1.content_hash, v3.content_hash}
    assert not v2.path.exists()
    assert sum(size for _, size, _ in cache.entries()) <= 10 * MB
    again = fetch(cache, registry["url"], 2)  # evicted: fetched again; v1 is the least recent now
    assert not again.warm
    assert {folder.name for folder, _, _ in cache.entries()} == {v3.content_hash, again.content_hash}
    alone = ModelCache(tmp_path / "small", max_bytes=1 * MB)  # a version over the limit on its own
    assert fetch(alone, registry["url"], 3).path.exists(), "the version just fetched is never evicted"


def test_each_node_keeps_its_own_cache(monkeypatch, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", deployment={"model_cache_max_gb": 2})
    assert node_cache(settings).root == tmp_path / "home" / "model-cache"
    assert node_cache(settings).max_bytes == 2 << 30
    monkeypatch.setenv(NODE_CACHE_DIR, str(tmp_path / "nvme"))  # what a Ray node's environment says
    assert node_cache(settings).root == tmp_path / "nvme"
