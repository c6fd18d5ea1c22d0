"""The fraud demo's pipelines: the project's tables in, one offline frame per feature view out.

A feature view names its pipeline with the tag ``kosmos.pipeline``; Kosmos calls the function
of that name with the tables its parameters name (``transactions``, ``users``). Every aggregate
of a row stamped ``t`` uses only events strictly before ``t``, and the merchant fraud rate uses
only labels known by ``t``, so training sets built from them cannot leak the future; ``created``
says when a row's values became known, so late data never shows up earlier than serving saw it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kosmos.features.pipelines import validate

TRANSACTIONS_SCHEMA: dict[str, str] = {
    "transaction_id": "integer",
    "user_id": "integer",
    "merchant_id": "integer",
    "amount": "number",
    "currency": "string",
    "country": "string",
    "channel": "string",
    "device": "string",
    "event_timestamp": "timestamp",
    "label": "integer",
    "ingested_at": "timestamp",
    "label_timestamp": "timestamp",
}
USERS_SCHEMA: dict[str, str] = {"user_id": "integer", "home_country": "string"}


def user_transaction_stats(transactions: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """Per transaction: the user's activity in the 1 h, 24 h and 7 d before it.

    ``created`` is when the row's values became known: the latest ingestion among the
    transaction itself and every event its windows count. An event that arrives late (ingested
    after a later transaction) makes that later row known only once it arrived, so a training
    set joined with ``filter_by_created_timestamp`` never sees it earlier than serving could.
    """
    validate(transactions, TRANSACTIONS_SCHEMA, "transactions")
    validate(users, USERS_SCHEMA, "users")
    tx = transactions.merge(users[["user_id", "home_country"]], on="user_id", how="left")
    tx = tx.sort_values(["user_id", "event_timestamp"], kind="stable").reset_index(drop=True)
    tx["foreign"] = (tx["country"].notna() & (tx["country"] != tx["home_country"])).astype(float)
    # rolling windows compute in float64: microseconds since the first ingestion stay exact
    origin = tx["ingested_at"].min()
    tx["ingested_us"] = (tx["ingested_at"] - origin) // pd.Timedelta(microseconds=1)
    indexed = tx.set_index("event_timestamp")
    grouped = indexed.groupby("user_id", sort=False)
    counted = grouped["ingested_us"].rolling("7D", closed="left").max().to_numpy()  # 7 d holds 1 h, 24 h
    known = np.fmax(tx["ingested_us"].to_numpy(dtype="float64"), counted)  # fmax ignores an empty window
    out = pd.DataFrame(
        {
            "user_id": tx["user_id"].to_numpy(),
            "event_timestamp": tx["event_timestamp"].to_numpy(),
            "created": origin + pd.to_timedelta(known.astype("int64"), unit="us"),
        }
    )
    for label, window in (("1h", "1h"), ("24h", "24h"), ("7d", "7D")):
        rolled = grouped["amount"].rolling(window, closed="left")
        out[f"txn_count_{label}"] = rolled.count().fillna(0).to_numpy().astype(np.int64)
        out[f"spend_{label}"] = rolled.sum().fillna(0.0).to_numpy()
    foreign = grouped["foreign"].rolling("7D", closed="left").mean().to_numpy()
    out["avg_amount_7d"] = np.where(
        out["txn_count_7d"] > 0, out["spend_7d"] / out["txn_count_7d"].clip(lower=1), np.nan
    )
    out["foreign_ratio_7d"] = foreign
    return _microseconds(out)


def merchant_stats(transactions: pd.DataFrame) -> pd.DataFrame:
    """Daily per merchant: 30-day volume and the fraud rate from what was known that day.

    A day's row counts the events ingested by then and the labels given by then, so ``created``
    (the day) is when its values became known; a late event counts from the next day on."""
    validate(transactions, TRANSACTIONS_SCHEMA, "transactions")
    tx = transactions
    first = tx["event_timestamp"].min().normalize() + pd.Timedelta(days=1)
    last = tx["event_timestamp"].max().normalize() + pd.Timedelta(days=1)
    frames = []
    for day in pd.date_range(first, last, freq="D"):
        in_window = (tx["event_timestamp"] >= day - pd.Timedelta(days=30)) & (tx["event_timestamp"] < day)
        window = tx[in_window & (tx["ingested_at"] <= day)]
        known_fraud = (window["label"] == 1) & (window["label_timestamp"] <= day)
        agg = pd.DataFrame({"merchant_id": window["merchant_id"], "fraud": known_fraud.astype(int)})
        stats = (
            agg.groupby("merchant_id")
            .agg(merchant_txn_count_30d=("fraud", "size"), frauds=("fraud", "sum"))
            .reset_index()
        )
        stats["merchant_fraud_rate_30d"] = stats["frauds"] / stats["merchant_txn_count_30d"]
        stats["event_timestamp"] = day
        frames.append(stats.drop(columns="frauds"))
    out = pd.concat(frames, ignore_index=True)
    out["merchant_txn_count_30d"] = out["merchant_txn_count_30d"].astype(np.int64)
    out["created"] = out["event_timestamp"]
    return _microseconds(out)


def _microseconds(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps at the precision parquet and DuckDB keep (UTC, microseconds)."""
    for column in ("event_timestamp", "created"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
    return frame
