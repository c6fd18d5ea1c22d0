"""Train the cache verifier through Kosmos: the generated pairs become a versioned dataset, the
fit a tracked run (with each perturbation family held out in turn), the model a registered
version that an alias points at. The gateway then resolves ``gateway.cache.verifier``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kosmos.genai.verifier.features import COLUMNS, feature_frame
from kosmos.genai.verifier.pairs import FAMILIES, training_pairs
from kosmos.platform.client import KosmosClient
from kosmos.platform.settings import Settings

DATASET, EXPERIMENT, MODEL = "cache-verifier-pairs", "cache-verifier", "cache-verifier"
SEEDS = (0, 1, 2)
C = 0.1  # chosen on the tuning pair set and per-family hold-outs, never on the held-out sets


def _classifier() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, class_weight="balanced"))


def generated_pairs() -> pd.DataFrame:
    """The training pairs of every seed, as one frame."""
    return pd.DataFrame([row for seed in SEEDS for row in training_pairs(seed)])


def fit(frame: pd.DataFrame, encode: Any) -> Any:
    """The fitted classifier on ``frame``'s pairs (what a training run registers)."""
    return _classifier().fit(_features(frame, encode), frame["same"].to_numpy())


def _features(frame: pd.DataFrame, encode: Any) -> pd.DataFrame:
    embed = lambda texts: np.vstack([encode(texts[i : i + 64]) for i in range(0, len(texts), 64)])  # noqa: E731
    a, b = list(frame["a"]), list(frame["b"])
    return feature_frame(a, b, embed(a), embed(b))


def train_verifier(
    project: str,
    settings: Settings,
    client: KosmosClient,
    *,
    alias: str = "champion",
    encode: Any = None,
) -> dict[str, Any]:
    """Generate, version, fit, evaluate, register and alias a verifier in ``project``; returns the
    registered version, its reference and the run's metrics."""
    from kosmos.genai.embeddings import local_encoder
    from kosmos.training import sdk
    from kosmos.training.tracking import run

    encode = encode or local_encoder(settings.home / "model-cache" / "embeddings")
    frame = generated_pairs()
    version = sdk.register_dataset(
        project,
        DATASET,
        frame,
        description="Cache verifier pairs: paraphrases and perturbations",
        client=client,
    )
    with run(
        project, EXPERIMENT, dataset=(DATASET, version["version"]), run_name="logistic-pair-features",
        settings=settings, client=client, code_path=Path(__file__),
    ) as tracked:  # fmt: skip
        data = tracked.data
        features, labels = _features(data, encode), data["same"].to_numpy()
        tracked.log_params(
            {"model": "logistic regression", "C": C, "features": ",".join(COLUMNS), "pairs": len(data)}
        )
        metrics: dict[str, float] = {}
        for family in FAMILIES:  # generalization: how many of an unseen family are still refused
            train = (data["family"] != family).to_numpy()
            held = _classifier().fit(features[train], labels[train])
            caught = held.predict_proba(features[~train])[:, 1] < 0.5
            metrics[f"heldout_family_refused_{family}"] = float(caught.mean())
        model = _classifier().fit(features, labels)
        predicted = model.predict_proba(features)[:, 1] >= 0.5
        metrics["train_accuracy"] = float((predicted == labels.astype(bool)).mean())
        tracked.log_metrics(metrics)
        tracked.log_model(model, input_example=features.head(5))
    registered = sdk.register_model(project, MODEL, tracked.run_id, client=client)
    sdk.promote(
        project, MODEL, registered["version"], alias=alias, reason="cache verifier trained", client=client
    )
    return {
        "version": registered["version"],
        "reference": f"{project}/{MODEL}@{alias}",
        "run_id": tracked.run_id,
        "metrics": metrics,
    }
