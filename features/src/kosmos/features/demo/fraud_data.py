"""A deterministic generator of card transactions with learnable fraud.

The same ``seed``, ``rows`` and ``end`` always give the same frames. Fraud is
about 2% of transactions and follows patterns a model can learn: bursts of
transactions on a compromised card, risky merchants, foreign countries, and
amounts far above the user's usual spend. Some fields are null, and some events
arrive late (``ingested_at`` well after ``event_timestamp``). A fraud label is
known only after a chargeback delay (``label_timestamp``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

COUNTRIES = np.array(["DE", "FR", "NL", "ES", "IT", "GB", "US", "PL"])
CURRENCIES = {"GB": "GBP", "US": "USD", "PL": "PLN"}
CHANNELS = np.array(["pos", "web", "app"])
DEVICES = np.array(["ios", "android", "desktop"])
CATEGORIES = np.array(["grocery", "fuel", "travel", "electronics", "fashion", "gaming", "gift_cards"])
DAYS = 30


@dataclass(frozen=True)
class FraudData:
    """The three tables of the demo domain."""

    transactions: pd.DataFrame
    users: pd.DataFrame
    merchants: pd.DataFrame


def default_end() -> datetime:
    """Midnight UTC today: data stays recent, and is the same all day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def generate(rows: int = 100_000, seed: int = 7, end: datetime | None = None) -> FraudData:
    """Generate ``rows`` transactions over the 30 days before ``end``."""
    if rows < 1_000:
        raise ValueError(f"rows must be at least 1000 (got {rows})")
    end = (end or default_end()).astimezone(UTC)
    rng = np.random.default_rng(seed)
    users = _users(rng, max(rows // 50, 20), end)
    merchants = _merchants(rng, max(rows // 200, 10))

    n_burst = int(rows * 0.012)
    n_normal = rows - n_burst
    normal = _normal_transactions(rng, n_normal, users, merchants, end)
    bursts = _fraud_bursts(rng, n_burst, users, merchants, end)
    tx = pd.concat([normal, bursts], ignore_index=True)
    tx = tx.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    tx.insert(0, "transaction_id", np.arange(1, len(tx) + 1, dtype=np.int64))

    # nulls, as real feeds have them
    tx.loc[rng.random(len(tx)) < 0.05, "device"] = None
    tx.loc[rng.random(len(tx)) < 0.01, "country"] = None
    # late-arriving events: most land within seconds, 3% hours to days later
    delay_s = rng.exponential(5, len(tx))
    late = rng.random(len(tx)) < 0.03
    delay_s[late] = rng.uniform(3_600, 3 * 86_400, late.sum())
    tx["ingested_at"] = tx["event_timestamp"] + pd.to_timedelta(delay_s, unit="s")
    # a label is known after a chargeback delay of 1 to 20 days
    tx["label_timestamp"] = tx["event_timestamp"] + pd.to_timedelta(rng.uniform(1, 20, len(tx)), unit="D")
    for column in ("event_timestamp", "ingested_at", "label_timestamp"):
        tx[column] = tx[column].dt.floor("us").astype("datetime64[us, UTC]")  # parquet/DuckDB precision
    return FraudData(transactions=tx, users=users, merchants=merchants)


def _users(rng: np.random.Generator, n: int, end: datetime) -> pd.DataFrame:
    signup_days = rng.integers(30, 2_000, n)
    return pd.DataFrame(
        {
            "user_id": np.arange(1, n + 1, dtype=np.int64),
            "home_country": rng.choice(COUNTRIES, n, p=[0.3, 0.15, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05]),
            "typical_amount": np.round(rng.lognormal(3.3, 0.6, n), 2),
            "signup_date": pd.Timestamp(end) - pd.to_timedelta(signup_days, unit="D"),
        }
    )


def _merchants(rng: np.random.Generator, n: int) -> pd.DataFrame:
    category = rng.choice(CATEGORIES, n)
    risky = rng.random(n) < np.where(np.isin(category, ["gift_cards", "electronics", "gaming"]), 0.3, 0.05)
    return pd.DataFrame(
        {
            "merchant_id": np.arange(1, n + 1, dtype=np.int64),
            "category": category,
            "country": rng.choice(COUNTRIES, n),
            "risky": risky,
        }
    )


def _timestamps(rng: np.random.Generator, n: int, end: datetime) -> pd.Series:
    seconds = rng.uniform(0, DAYS * 86_400, n)
    return pd.Series(pd.Timestamp(end) - pd.to_timedelta(seconds, unit="s"))


def _normal_transactions(
    rng: np.random.Generator, n: int, users: pd.DataFrame, merchants: pd.DataFrame, end: datetime
) -> pd.DataFrame:
    weights = rng.pareto(3.0, len(users)) + 1
    user_idx = rng.choice(len(users), n, p=weights / weights.sum())
    merchant_idx = rng.integers(0, len(merchants), n)
    u = users.iloc[user_idx].reset_index(drop=True)
    m = merchants.iloc[merchant_idx].reset_index(drop=True)
    foreign = rng.random(n) < 0.08
    country = np.where(foreign, rng.choice(COUNTRIES, n), u["home_country"].to_numpy())
    spike = rng.random(n) < 0.03
    amount = u["typical_amount"].to_numpy() * rng.lognormal(0, 0.5, n) * np.where(spike, 6.0, 1.0)
    channel = rng.choice(CHANNELS, n, p=[0.5, 0.3, 0.2])
    logit = (
        -6.6
        + 2.8 * m["risky"].to_numpy()
        + 2.0 * (country != u["home_country"].to_numpy())
        + 2.8 * spike
        + 0.8 * (channel == "web")
        + rng.normal(0, 0.3, n)
    )
    label = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "user_id": u["user_id"].to_numpy(),
            "merchant_id": m["merchant_id"].to_numpy(),
            "amount": np.round(amount, 2),
            "currency": [CURRENCIES.get(c, "EUR") for c in country],
            "country": country,
            "channel": channel,
            "device": rng.choice(DEVICES, n),
            "event_timestamp": _timestamps(rng, n, end),
            "label": label.astype(np.int8),
        }
    )


def _fraud_bursts(
    rng: np.random.Generator, n: int, users: pd.DataFrame, merchants: pd.DataFrame, end: datetime
) -> pd.DataFrame:
    """Compromised cards: several quick, large transactions at risky merchants abroad."""
    risky_merchants = merchants.loc[merchants["risky"], "merchant_id"].to_numpy()
    if len(risky_merchants) == 0:
        risky_merchants = merchants["merchant_id"].to_numpy()
    frames, made = [], 0
    while made < n:
        size = int(min(rng.integers(3, 9), n - made))
        user = users.iloc[int(rng.integers(0, len(users)))]
        start = _timestamps(rng, 1, end - timedelta(hours=1)).iloc[0]
        offsets = np.sort(rng.uniform(0, 3_600, size))
        foreign_country = rng.choice(COUNTRIES[user["home_country"] != COUNTRIES])
        frames.append(
            pd.DataFrame(
                {
                    "user_id": np.full(size, user["user_id"], dtype=np.int64),
                    "merchant_id": rng.choice(risky_merchants, size),
                    "amount": np.round(user["typical_amount"] * rng.uniform(2, 8, size), 2),
                    "currency": CURRENCIES.get(foreign_country, "EUR"),
                    "country": foreign_country,
                    "channel": rng.choice(CHANNELS, size, p=[0.1, 0.7, 0.2]),
                    "device": rng.choice(DEVICES, size),
                    "event_timestamp": start + pd.to_timedelta(offsets, unit="s"),
                    "label": (rng.random(size) < 0.9).astype(np.int8),
                }
            )
        )
        made += size
    return pd.concat(frames, ignore_index=True)


def write(data: FraudData, folder: Path) -> dict[str, Path]:
    """Write the tables as parquet, each atomically (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("transactions", "users", "merchants"):
        path = folder / f"{name}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        getattr(data, name).to_parquet(tmp, index=False)
        os.replace(tmp, path)
        paths[name] = path
    return paths
