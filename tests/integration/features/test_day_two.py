"""Day two of a project's own features: late rows and a backfill reach the online store.

Feast's incremental materialization reads only events after each view's watermark. A user's
table gets rows 1-3 days late and a backfill of a window more than 30 days old; the next run
must serve them, and say how much it wrote and how far back it reached.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kosmos.features import project_tables
from kosmos.features.repo import FeatureRepo
from kosmos.features.runs import run_pipelines
from kosmos.features.serving import get_online
from kosmos.features.stats import feature_stats
from kosmos.platform.settings import Settings

FEATURES = (Path(__file__).resolve().parents[2] / "data" / "chargebacks_repo" / "features.py").read_text()

NOW = datetime.now(UTC).replace(microsecond=0)
DAY_ONE = NOW - timedelta(hours=1)


def _rows(merchants: range, events: list[datetime], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        [(m, t) for m in merchants for t in events], columns=["merchant_id", "event_timestamp"]
    )
    frame["disputes"] = rng.integers(0, 50, len(frame))
    frame["disputed_amount"] = rng.uniform(0, 5_000, len(frame)).round(2)
    frame.loc[frame.sample(frac=0.05, random_state=seed).index, "disputed_amount"] = np.nan  # nulls
    return frame


def _upload(repo: FeatureRepo, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.sample(frac=1.0, random_state=1).to_parquet(buffer, index=False)  # unsorted, as users send it
    project_tables.write_table(repo, "chargebacks", buffer.getvalue())


@pytest.fixture
def merchants_repo(feature_settings: Settings):
    repo = FeatureRepo(feature_settings, f"chargebacks-{uuid.uuid4().hex[:8]}")
    repo.init()
    yield repo
    if repo.current_version() is not None:
        repo.store().teardown()


def _online(repo: FeatureRepo, ids: list[int]) -> list[int | None]:
    return get_online(repo, {"merchant_id": ids}, feature_service="chargebacks_v1")["disputes"]


def test_late_rows_and_a_backfill_reach_the_online_store_on_the_next_run(merchants_repo) -> None:
    repo = merchants_repo
    busy = _rows(range(1, 41), [NOW - timedelta(days=d) for d in range(60, 3, -2)], seed=1)
    quiet = _rows(range(41, 51), [NOW - timedelta(days=d) for d in (60, 50, 45)], seed=2)
    day_one = pd.concat([busy, quiet], ignore_index=True)
    day_one["created"] = day_one["event_timestamp"] + timedelta(hours=1)
    _upload(repo, day_one)
    repo.apply_files({"features.py": FEATURES}, applied_by="ada")
    first = run_pipelines(repo, end=DAY_ONE)
    assert first.status == "succeeded" and first.online["merchant_chargebacks"]["entities"] == 50

    # day two: rows 1-3 days late for 20 merchants, a backfill 35 days back for the 10 quiet ones
    # (newer than anything they had), and one ordinary new row after the watermark
    late = _rows(range(1, 21), [NOW - timedelta(days=2)], seed=3)
    backfill = _rows(range(41, 51), [NOW - timedelta(days=35)], seed=4)
    fresh = _rows(range(30, 31), [NOW - timedelta(minutes=30)], seed=5)
    arrived = pd.concat([late, backfill, fresh], ignore_index=True).assign(created=NOW - timedelta(minutes=5))
    _upload(repo, pd.concat([day_one, arrived], ignore_index=True))
    second = run_pipelines(repo, end=NOW)

    ids = [*range(1, 21), *range(41, 51), 30]
    expected = pd.concat([late, backfill, fresh]).set_index("merchant_id").loc[ids, "disputes"]
    assert _online(repo, ids) == expected.tolist()
    untouched = day_one[day_one.merchant_id.between(21, 29)].sort_values("event_timestamp")
    latest = untouched.groupby("merchant_id").last()["disputes"]
    assert _online(repo, list(range(21, 30))) == latest.tolist()  # no older value came back
    wrote = second.online["merchant_chargebacks"]
    assert wrote["late_rows"] == 30 and wrote["entities"] == 31
    assert pd.Timestamp(wrote["oldest_event"]) == NOW - timedelta(days=35)

    # a third run with nothing new rewrites nothing behind the watermark
    third = run_pipelines(repo, end=NOW + timedelta(minutes=1))
    assert third.online["merchant_chargebacks"]["late_rows"] == 0
    stats = feature_stats(repo, "merchant_chargebacks")
    assert stats["online"]["materialized_until"] == (NOW + timedelta(minutes=1)).isoformat()
    assert stats["online"]["newest_event"] == wrote["newest_event"]
    assert stats["online"]["freshness_seconds"] >= stats["freshness_seconds"] - 1
