"""First start of `make run`: train, register and promote the demo fraud model (once)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from kosmos.features import sdk as features
from kosmos.features.repo import feature_repo
from kosmos.platform.client import KosmosClient
from kosmos.platform.errors import KosmosError
from kosmos.platform.settings import Settings
from kosmos.training import sdk
from kosmos.training.tracking import run

log = logging.getLogger(__name__)
PROJECT, DATASET, MODEL = "demo", "fraud-training", "fraud-detector"


def train_demo_model(settings: Settings) -> str | None:
    """Train the demo model unless the demo project already has a champion; returns what happened."""
    from kosmos.training.trainers.boosting import train_baseline

    with KosmosClient(settings=settings) as client:
        existing = {m["name"]: m for m in sdk.list_models(PROJECT, client=client)}
        if "champion" in existing.get(MODEL, {}).get("aliases", {}):
            return None
        raw = pd.read_parquet(feature_repo(settings, PROJECT).tables_dir / "transactions.parquet")
        entities = raw[["transaction_id", "user_id", "merchant_id", "amount", "event_timestamp", "label"]]
        frame = features.get_training_set(
            PROJECT, entities, feature_service="fraud_detection_v1", client=client
        )
        version = sdk.register_dataset(
            PROJECT,
            DATASET,
            frame,
            feature_service="fraud_detection_v1",
            description="Demo training set: every transaction, PIT-joined.",
            client=client,
        )
        with run(
            PROJECT,
            "fraud-detection",
            dataset=(DATASET, version["version"]),
            run_name="baseline",
            settings=settings,
            client=client,
            code_path=Path(__file__),
        ) as tracked:
            metrics = train_baseline(tracked, tracked.data)
        try:
            model = sdk.register_model(PROJECT, MODEL, tracked.run_id, client=client)
        except KosmosError as exc:
            auc = metrics["roc_auc"]
            return f"trained run {tracked.run_id} (ROC-AUC {auc:.3f}) but did not register it: {exc}"
        sdk.promote(
            PROJECT,
            MODEL,
            model["version"],
            alias="champion",
            reason="demo bootstrap: the first model of the project",
            client=client,
        )
        return f"{MODEL} v{model['version']} is champion (ROC-AUC {metrics['roc_auc']:.3f})"
