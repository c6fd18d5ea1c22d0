"""Online features after materialization; failed runs say so and re-running repairs them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from kosmos.features.runs import last_run, run_pipelines
from kosmos.features.serving import get_online
from kosmos.platform.errors import InvalidInput


def _latest_offline(repo, view: str, key: str) -> pd.DataFrame:
    frame = pd.read_parquet(repo.offline_dir / f"{view}.parquet")
    return frame.sort_values(["event_timestamp", "created"]).groupby(key).tail(1).set_index(key)


def test_online_values_are_the_latest_materialized(shared_fraud_repo) -> None:
    latest = _latest_offline(shared_fraud_repo, "user_transaction_stats", "user_id")
    users = [int(u) for u in latest.index[:5]]
    values = get_online(
        shared_fraud_repo,
        {"user_id": users},
        features=["user_transaction_stats:spend_7d", "user_transaction_stats:txn_count_24h"],
    )
    assert values["user_id"] == users
    assert values["spend_7d"] == pytest.approx(latest.loc[users, "spend_7d"].tolist())
    assert values["txn_count_24h"] == latest.loc[users, "txn_count_24h"].tolist()


def test_feature_service_with_request_data(shared_fraud_repo) -> None:
    latest = _latest_offline(shared_fraud_repo, "user_transaction_stats", "user_id")
    user = int(latest.index[0])
    mean = latest.loc[user, "avg_amount_7d"]
    values = get_online(
        shared_fraud_repo,
        {"user_id": [user], "merchant_id": [1]},
        feature_service="fraud_detection_v1",
        request_data={"amount": [100.0]},
    )
    assert len([k for k in values if k not in ("user_id", "merchant_id", "amount")]) >= 10
    expected = 100.0 / mean if mean and mean > 0 else 1.0
    assert values["amount_vs_user_mean_7d"][0] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"entities": {"user_id": ["7"]}, "features": ["user_transaction_stats:spend_7d"]},
            "must be an integer",
        ),
        (
            {"entities": {"user_id": [True]}, "features": ["user_transaction_stats:spend_7d"]},
            "must be an integer",
        ),
        (
            {"entities": {"customer": [1]}, "features": ["user_transaction_stats:spend_7d"]},
            "unknown entity key",
        ),
        ({"entities": {}, "features": ["user_transaction_stats:spend_7d"]}, "at least one entity"),
        ({"entities": {"user_id": [1]}, "feature_service": "nope"}, "unknown feature service"),
        ({"entities": {"user_id": [1]}, "features": ["user_transaction_stats:nope"]}, "has no feature"),
        ({"entities": {"user_id": [1]}}, "either a feature_service or a features list"),
        (
            {
                "entities": {"user_id": [1, 2]},
                "feature_service": "fraud_detection_v1",
                "request_data": {"amount": [1.0]},
            },
            "same, non-zero number",
        ),
    ],
)
def test_bad_lookups_are_named(shared_fraud_repo, kwargs: dict, message: str) -> None:
    kwargs = dict(kwargs)  # the parameter dict is shared between backends
    entities = kwargs.pop("entities")
    with pytest.raises(InvalidInput, match=message):
        get_online(shared_fraud_repo, entities, **kwargs)


def test_schema_change_in_raw_data_is_named_and_changes_nothing(fraud_repo) -> None:
    path = fraud_repo.tables_dir / "transactions.parquet"
    tx = pd.read_parquet(path)
    before = (fraud_repo.offline_dir / "merchant_stats.parquet").read_bytes()
    tx.drop(columns="merchant_id").assign(amount=tx["amount"].astype(str)).to_parquet(path)
    with pytest.raises(InvalidInput) as info:
        run_pipelines(fraud_repo)
    fields = {d["field"]: d["reason"] for d in info.value.details}
    assert fields["transactions.merchant_id"] == "missing column"
    assert "expected number" in fields["transactions.amount"]
    assert last_run(fraud_repo)["status"] == "failed"
    assert (fraud_repo.offline_dir / "merchant_stats.parquet").read_bytes() == before


def test_failed_materialization_says_so_and_rerunning_repairs_it(fraud_repo) -> None:
    merchants = fraud_repo.offline_dir / "merchant_stats.parquet"
    latest = _latest_offline(fraud_repo, "merchant_stats", "merchant_id")
    merchant = int(latest.index[0])
    # the offline source is swapped for one whose feature columns are gone
    pd.read_parquet(merchants)[["merchant_id", "event_timestamp", "created"]].to_parquet(merchants)
    with pytest.raises(Exception):  # noqa: B017 - whatever Feast raises, the status must say failed
        run_pipelines(fraud_repo, compute=False, end=datetime.now(UTC))
    status = last_run(fraud_repo)
    assert status["status"] == "failed" and status["error"]

    run = run_pipelines(fraud_repo)  # recomputes the sources and materializes again
    assert run.status == "succeeded" and last_run(fraud_repo)["status"] == "succeeded"
    values = get_online(
        fraud_repo, {"merchant_id": [merchant]}, features=["merchant_stats:merchant_txn_count_30d"]
    )
    assert values["merchant_txn_count_30d"] == [int(latest.loc[merchant, "merchant_txn_count_30d"])]


def test_missing_raw_data_is_named(fraud_repo) -> None:
    (fraud_repo.tables_dir / "users.parquet").unlink()
    with pytest.raises(InvalidInput, match=r"no table .users."):
        run_pipelines(fraud_repo)


def test_the_repository_stays_usable_with_the_feast_cli(fraud_repo) -> None:
    feast = Path(sys.executable).parent / "feast"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for args in (
        ["apply"],
        ["materialize-incremental", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")],
        ["feature-views", "list"],
    ):
        out = subprocess.run(
            [str(feast), *args], cwd=fraud_repo.path, env=env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0, (args, out.stdout[-2000:], out.stderr[-2000:])
    assert "user_transaction_stats" in out.stdout and "merchant_stats" in out.stdout
    latest = _latest_offline(fraud_repo, "user_transaction_stats", "user_id")
    user = int(latest.index[0])
    fraud_repo.store().refresh_registry()
    values = get_online(fraud_repo, {"user_id": [user]}, features=["user_transaction_stats:spend_7d"])
    assert values["spend_7d"] == pytest.approx([latest.loc[user, "spend_7d"]])
