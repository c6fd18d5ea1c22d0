"""The demo generator: deterministic, imbalanced, messy like real data, and learnable."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from kosmos.features.demo import generate
from kosmos.features.demo.fraud_repo.pipelines import merchant_stats, user_transaction_stats

END = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data():
    return generate(rows=20_000, seed=3, end=END)


def test_same_seed_same_data(data) -> None:
    again = generate(rows=20_000, seed=3, end=END)
    assert again.transactions.equals(data.transactions)
    assert not generate(rows=20_000, seed=4, end=END).transactions.equals(data.transactions)


def test_looks_like_card_fraud(data) -> None:
    tx = data.transactions
    assert len(tx) == 20_000 and tx["transaction_id"].is_unique
    assert 0.01 <= tx["label"].mean() <= 0.03
    assert tx["device"].isna().mean() > 0.02 and tx["country"].isna().mean() > 0.002
    late = (tx["ingested_at"] - tx["event_timestamp"]).dt.total_seconds() > 3_600
    assert 0.01 < late.mean() < 0.06
    assert (tx["label_timestamp"] > tx["event_timestamp"]).all()
    assert tx["event_timestamp"].max() <= END


def test_label_is_learnable_from_the_features(data) -> None:
    users = user_transaction_stats(data.transactions, data.users).drop(columns=["created"])
    frame = data.transactions.sort_values("event_timestamp")
    frame = frame.merge(users, on=["user_id", "event_timestamp"], how="left")
    merchants = merchant_stats(data.transactions).drop(columns=["created"]).sort_values("event_timestamp")
    frame = frame.sort_values("event_timestamp")
    frame = pd.merge_asof(frame, merchants, on="event_timestamp", by="merchant_id")
    columns = [
        c
        for c in frame.columns
        if c.startswith(("txn_", "spend_", "avg_", "foreign_", "merchant_")) and c != "merchant_id"
    ] + ["amount"]
    split = int(len(frame) * 0.75)
    train, test = frame.iloc[:split], frame.iloc[split:]
    model = HistGradientBoostingClassifier(random_state=0).fit(train[columns], train["label"])
    auc = roc_auc_score(test["label"], model.predict_proba(test[columns])[:, 1])
    assert auc > 0.8, auc
    assert roc_auc_score(test["label"], [0.5] * len(test)) == 0.5


def test_too_few_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        generate(rows=10)


def test_no_feature_row_is_known_before_the_events_it_counts(data) -> None:
    """Late events (ingested after later transactions): a row's ``created`` must not come before
    the ingestion of any event its windows count, or a training set sees what serving could not."""
    tx = data.transactions
    users = user_transaction_stats(tx, data.users)
    by_user = {u: g.sort_values("event_timestamp") for u, g in tx.groupby("user_id")}
    early = 0
    for row in users.sample(5000, random_state=0).itertuples():  # about 450 late-stamped today
        events = by_user[row.user_id]
        counted = events[
            (events["event_timestamp"] >= row.event_timestamp - pd.Timedelta(days=7))
            & (events["event_timestamp"] < row.event_timestamp)
        ]
        early += int((counted["ingested_at"] > row.created).any())
    assert early == 0, f"{early} of 5000 rows are stamped before an event they count arrived"

    merchants = merchant_stats(tx)
    sample = merchants.sample(300, random_state=0)
    for row in sample.itertuples():
        seen = tx[
            (tx["merchant_id"] == row.merchant_id)
            & (tx["event_timestamp"] >= row.event_timestamp - pd.Timedelta(days=30))
            & (tx["event_timestamp"] < row.event_timestamp)
        ]
        assert (seen["ingested_at"] <= row.created).sum() == row.merchant_txn_count_30d, row
