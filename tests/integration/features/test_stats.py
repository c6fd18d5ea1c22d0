"""Feature statistics and PSI drift."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from kosmos.features.stats import feature_drift, feature_stats, psi
from kosmos.platform.errors import InvalidInput


def test_stats_match_the_offline_data(shared_fraud_repo) -> None:
    frame = pd.read_parquet(shared_fraud_repo.offline_dir / "user_transaction_stats.parquet")
    result = feature_stats(shared_fraud_repo, "user_transaction_stats")
    assert result["rows"] == len(frame)
    assert result["freshness_seconds"] > 0
    spend = result["features"]["spend_7d"]
    assert spend["mean"] == pytest.approx(frame["spend_7d"].mean())
    assert spend["max"] == pytest.approx(frame["spend_7d"].max())
    assert result["features"]["avg_amount_7d"]["null_rate"] == pytest.approx(
        frame["avg_amount_7d"].isna().mean()
    )


def test_drift_between_windows(shared_fraud_repo) -> None:
    result = feature_drift(shared_fraud_repo, "user_transaction_stats")
    assert result["rows"]["reference"] > 0 and result["rows"]["current"] > 0
    assert set(result["psi"]) >= {"spend_7d", "txn_count_1h"}
    latest = pd.read_parquet(shared_fraud_repo.offline_dir / "user_transaction_stats.parquet")[
        "event_timestamp"
    ].max()
    with pytest.raises(InvalidInput, match="start must be before"):
        feature_drift(
            shared_fraud_repo, "user_transaction_stats", current=(latest, latest - timedelta(days=1))
        )
    with pytest.raises(InvalidInput, match="unknown feature view"):
        feature_stats(shared_fraud_repo, "nope")


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    base = pd.Series(rng.normal(0, 1, 5_000))
    assert psi(base, pd.Series(rng.normal(0, 1, 5_000))) < 0.02
    assert psi(base, pd.Series(rng.normal(1.5, 1, 5_000))) > 0.2
    assert psi(base, pd.Series([], dtype=float)) is None
