"""Point-in-time training sets: correct joins, no leakage, clear errors for bad entity frames."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from kosmos.features.serving import get_training_set
from kosmos.platform.errors import InvalidInput


def _entities(repo, n: int = 400) -> pd.DataFrame:
    tx = pd.read_parquet(repo.tables_dir / "transactions.parquet")
    return tx.sample(n, random_state=1)[
        ["transaction_id", "user_id", "merchant_id", "amount", "event_timestamp", "label"]
    ]


def test_every_entity_row_comes_back(shared_fraud_repo) -> None:
    entities = _entities(shared_fraud_repo)
    result = get_training_set(shared_fraud_repo, entities, feature_service="fraud_detection_v1")
    assert sorted(result["transaction_id"]) == sorted(entities["transaction_id"])
    assert {"txn_count_1h", "merchant_fraud_rate_30d", "amount_vs_user_mean_7d"} <= set(result.columns)


def test_values_are_the_latest_known_at_each_event(shared_fraud_repo) -> None:
    """Brute force: each value is the offline row with the latest timestamp <= t, created <= t."""
    entities = _entities(shared_fraud_repo, 150)
    result = get_training_set(shared_fraud_repo, entities, features=["user_transaction_stats:spend_24h"])
    offline = pd.read_parquet(shared_fraud_repo.offline_dir / "user_transaction_stats.parquet")
    for row in result.itertuples():
        t = row.event_timestamp
        known = offline[
            (offline["user_id"] == row.user_id)
            & (offline["event_timestamp"] <= t)
            & (offline["created"] <= t)
            & (offline["event_timestamp"] >= t - timedelta(days=7))
        ]
        if known.empty:
            assert pd.isna(row.spend_24h)
        else:
            latest = known.sort_values(["event_timestamp", "created"]).iloc[-1]
            assert row.spend_24h == pytest.approx(latest["spend_24h"])


def test_no_value_from_the_future_leaks_into_a_row(fraud_repo) -> None:
    offline_path = Path(fraud_repo.offline_dir / "user_transaction_stats.parquet")
    offline = pd.read_parquet(offline_path)
    user = int(offline["user_id"].iloc[0])
    t = offline.loc[offline["user_id"] == user, "event_timestamp"].max() + timedelta(hours=1)
    marker = offline[offline["user_id"] == user].iloc[[-1]].copy()
    future = marker.assign(
        event_timestamp=t + timedelta(seconds=1), created=t + timedelta(seconds=1), txn_count_7d=999_999
    )
    late = marker.assign(
        event_timestamp=t - timedelta(minutes=5), created=t + timedelta(hours=2), txn_count_7d=888_888
    )
    pd.concat([offline, future, late], ignore_index=True).to_parquet(offline_path, index=False)

    entities = pd.DataFrame(
        {
            "user_id": [user, user, user],
            "event_timestamp": [t, t + timedelta(seconds=2), t + timedelta(hours=3)],
        }
    )
    result = get_training_set(fraud_repo, entities, features=["user_transaction_stats:txn_count_7d"])
    by_time = dict(zip(result["event_timestamp"], result["txn_count_7d"], strict=True))
    assert by_time[t] not in (999_999, 888_888)  # neither the future row nor the late-arriving one
    assert by_time[t + timedelta(seconds=2)] == 999_999  # known by then
    assert by_time[t + timedelta(hours=3)] == 999_999  # latest event wins over the late arrival


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda df: df.iloc[0:0], "entity_df", "empty"),
        (lambda df: df.drop(columns="event_timestamp"), "entity_df.event_timestamp", "missing"),
        (
            lambda df: df.assign(event_timestamp=df["event_timestamp"].dt.tz_localize(None)),
            "entity_df.event_timestamp",
            "timezone-aware",
        ),
        (lambda df: df.assign(user_id=df["user_id"].astype(str)), "entity_df.user_id", "integers"),
        (lambda df: df.drop(columns=["user_id", "merchant_id"]), "entity_df", "no entity key"),
    ],
)
def test_bad_entity_frames_are_named(shared_fraud_repo, change, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        get_training_set(
            shared_fraud_repo, change(_entities(shared_fraud_repo, 5)), feature_service="fraud_detection_v1"
        )
    assert info.value.details[0]["field"] == field
    assert reason in info.value.details[0]["reason"]


def test_unknown_names_are_named(shared_fraud_repo) -> None:
    with pytest.raises(InvalidInput, match=r"unknown feature service 'nope'.*fraud_detection_v1"):
        get_training_set(shared_fraud_repo, _entities(shared_fraud_repo, 5), feature_service="nope")
    with pytest.raises(InvalidInput, match="unknown feature view 'ghost'"):
        get_training_set(shared_fraud_repo, _entities(shared_fraud_repo, 5), features=["ghost:x"])
    with pytest.raises(InvalidInput, match="has no feature 'x'"):
        get_training_set(shared_fraud_repo, _entities(shared_fraud_repo, 5), features=["merchant_stats:x"])
