"""Data-parallel training on the Ray cluster with Ray Train's TorchTrainer.

The training loop is the same function the local path runs (``fit``); Ray Train
starts the workers, sets up the torch process group (gloo on CPU, NCCL on GPU)
and ``prepare_model`` wraps the network in DistributedDataParallel. Rank 0 sends
its best weights back as a checkpoint; the driver logs them to the MLflow run.
Workers are spread over the cluster's nodes (each CPU node brings its own cores
and memory bandwidth), and the run records which nodes trained it. Checkpoints go to
``training.storage`` (S3 or a shared folder), which every node and the driver reach.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kosmos.platform.ray_cluster import connect
from kosmos.platform.settings import Settings, get_settings
from kosmos.training.trainers.mlp import FitData, fit

History = list[tuple[int, float, float]]


@dataclass(frozen=True)
class RayFit:
    """What a data-parallel fit returns: rank 0's best weights and how the fit went."""

    state: dict[str, torch.Tensor]
    best_loss: float
    epochs: int
    history: History
    nodes: list[str]
    """Ray node ids of the workers, one per rank."""


def _worker_loop(config: dict[str, Any]) -> None:
    import ray
    import ray.train
    import torch.distributed as dist
    from ray.train.torch import prepare_model

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    nodes: list[str | None] = [None] * world
    dist.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    data: FitData = config["data"]
    history: History = []
    state, best_loss, epochs = fit(
        data,
        wrap=prepare_model,
        shard=(rank, world),
        on_epoch=lambda e, t, v: history.append((e, t, v)),
    )
    metrics = {"best_validation_loss": best_loss, "epochs": epochs, "rank": rank}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            torch.save({"state": state, "history": history, "nodes": nodes}, Path(folder) / "weights.pt")
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_storage(settings: Settings) -> tuple[str, Any]:
    """Ray Train's ``storage_path`` and ``storage_filesystem`` for ``training.storage``.

    An s3:// URI with an endpoint (MinIO, Ceph) needs pyarrow's S3 filesystem pointed at it; the
    credentials are the usual AWS variables, which pyarrow reads itself. Unset: a folder under
    KOSMOS_HOME, which every worker reaches only when they all run on this host.
    """
    storage = settings.training.storage
    if storage is None:
        local = settings.home / "ray-train"
        local.mkdir(parents=True, exist_ok=True)
        return str(local), None
    if storage.startswith("s3://") and settings.training.endpoint_url:
        from pyarrow import fs

        endpoint = settings.training.endpoint_url
        scheme, _, host = endpoint.partition("://")
        filesystem = fs.S3FileSystem(
            endpoint_override=host or endpoint,
            scheme=scheme if host else "https",
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
        return storage.removeprefix("s3://"), filesystem
    return storage, None


def fit_on_ray(
    data: FitData,
    workers: int,
    *,
    settings: Settings | None = None,
    cpus_per_worker: float = 1.0,
    use_gpu: bool = False,
) -> RayFit:
    """Run ``fit`` on ``workers`` Ray Train workers, spread over the cluster's nodes."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    settings = settings or get_settings()
    connect(settings)
    storage_path, filesystem = train_storage(settings)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"data": data},
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cpus_per_worker},
            placement_strategy="SPREAD",
        ),
        run_config=RunConfig(
            name=f"kosmos-mlp-{uuid.uuid4().hex[:8]}",
            storage_path=storage_path,
            storage_filesystem=filesystem,
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train finished without a checkpoint from rank 0: {result.error}")
    with result.checkpoint.as_directory() as folder:
        saved = torch.load(Path(folder) / "weights.pt", weights_only=False)
    history: History = saved["history"]
    best = min(v for _, _, v in history)
    return RayFit(saved["state"], best, len(history), history, saved["nodes"])
