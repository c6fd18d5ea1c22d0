"""The decision recorder against the real databases: batches, JSON safety, PII, a store that is down,
a clean shutdown, retention. The data-plane side (records of real predictions, explain, replay)
is in tests/integration/deployment/test_decisions.py."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from kosmos.deployment import decisions
from kosmos.deployment.models import DecisionRow
from kosmos.platform.db.engine import Database
from kosmos.platform.db.migrate import upgrade
from kosmos.platform.db.models import Project, Team


def _project(database: Database, name: str = "risk") -> int:
    with database.transaction() as session:
        team = Team(name=f"team-{name}")
        session.add(team)
        session.flush()
        project = Project(name=name, team_id=team.id)
        session.add(project)
        session.flush()
        return project.id


def _record(request_id: str, **extra: object) -> dict:
    return {
        "project": "risk",
        "deployment": "scorer",
        "kind": "model",
        "request_id": request_id,
        "at": time.time(),
        "status": "ok",
        "model_version": 3,
        **extra,
    }


def _count(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(DecisionRow))


def test_records_are_written_in_batches_safe_as_json_and_redacted(database_url: str) -> None:
    database = Database(database_url)
    project_id = _project(database)
    recorder = decisions.DecisionRecorder(database, flush_s=3600, max_batch=7)
    try:
        for i in range(20):
            recorder.add(_record(f"r{i}"))
        odd = {
            "input": [{"email": "Write to ana.lopez@example.com", "amount": 12.5, "user_id": 7}],
            "features": {"f": {"view": "v", "values": [math.nan, np.float32(0.25)]}},
            "output": {"predictions": [[0.9, math.inf]]},
            "when": datetime(2026, 1, 2, tzinfo=UTC),
        }
        recorder.add(_record("odd", part=1, **odd))
        assert recorder.flush() == 21 and recorder.stats().queued == 0
        with database.transaction() as session:
            [row] = decisions.find(session, project_id, "odd")
            assert row.part == 1 and row.model_version == 3 and row.deployment == "scorer"
            stored = row.record
            assert decisions.find(session, project_id + 1, "odd") == []  # another project sees nothing
        assert stored["input"] == [{"email": "Write to [EMAIL]", "amount": 12.5, "user_id": 7}]
        assert stored["redacted"] == 1
        assert stored["features"]["f"]["values"] == [None, 0.25]  # NaN is stored as null, numpy as a number
        assert stored["output"]["predictions"] == [[0.9, None]]
        assert stored["when"] == "2026-01-02T00:00:00+00:00"
    finally:
        recorder.close()
        database.dispose()


def test_a_store_that_is_down_fails_no_request_and_what_it_missed_is_written_when_it_returns(
    empty_pg_database, monkeypatch
) -> None:
    url = empty_pg_database()  # exists, but has no tables yet: every write fails as when it is down
    database = Database(url)
    monkeypatch.setattr(decisions, "MAX_QUEUED", 50)
    recorder = decisions.DecisionRecorder(database, flush_s=3600)
    try:
        for i in range(80):
            recorder.add(_record(f"r{i}"))  # never raises, never waits on the store
        assert recorder.flush() == 0
        stats = recorder.stats()
        assert stats.queued == 50 and stats.dropped == 30 and stats.failed_writes == 1
        upgrade(url)  # the store comes back
        _project(database)
        assert recorder.flush() == 50
        with database.transaction() as session:
            kept = session.scalars(select(DecisionRow.request_id).order_by(DecisionRow.id)).all()
        assert kept == [f"r{i}" for i in range(30, 80)]  # the newest were kept, in order
    finally:
        recorder.close()
        database.dispose()


def test_a_record_the_store_refuses_is_dropped_alone_and_never_blocks_the_queue(database_url: str) -> None:
    database = Database(database_url)
    _project(database)
    recorder = decisions.DecisionRecorder(database, flush_s=3600)
    try:
        recorder.add(_record("good-1"))
        recorder.add(_record("bad", at="yesterday"))  # not a time: this record can never be written
        recorder.add(_record("good-2", deployment="d" * 500))  # longer than the column (PostgreSQL refuses)
        recorder.add(_record("good-3"))
        written = recorder.flush()
        with database.transaction() as session:
            kept = set(session.scalars(select(DecisionRow.request_id)))
        assert {"good-1", "good-3"} <= kept and "bad" not in kept
        assert written == len(kept) and recorder.stats().dropped == 4 - len(kept)
        assert recorder.stats().queued == 0 and recorder.stats().failed_writes == 0
    finally:
        recorder.close()
        database.dispose()


def test_a_clean_shutdown_writes_every_queued_record(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    _project(database)
    recorder = decisions.DecisionRecorder(database, flush_s=3600)  # its thread would not write for an hour
    for i in range(300):
        recorder.add(_record(f"r{i}"))
    recorder.close()
    assert _count(database) == 300
    database.dispose()


def test_records_past_their_retention_are_purged(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    _project(database)
    recorder = decisions.DecisionRecorder(database, flush_s=3600)
    long_ago = (datetime.now(UTC) - timedelta(days=10)).timestamp()
    recorder.add(_record("old", at=long_ago, retention_days=7))
    recorder.add(_record("kept", at=long_ago, retention_days=30))
    recorder.add(_record("new", retention_days=7))
    recorder.close()
    assert decisions.purge(database) == 1
    with database.transaction() as session:
        left = set(session.scalars(select(DecisionRow.request_id)))
    assert left == {"kept", "new"}
    database.dispose()


@pytest.mark.parametrize("rows", [[{"amount": 1.0}], [{"note": "call +44 20 7946 0958 now", "n": 3}]])
def test_redaction_keeps_numbers_and_keys(rows: list[dict]) -> None:
    clean, found = decisions.redact_rows(rows)
    assert [set(r) for r in clean] == [set(r) for r in rows]
    assert all(
        c.get("amount") == r.get("amount") and c.get("n") == r.get("n")
        for c, r in zip(clean, rows, strict=True)
    )
    assert found == (1 if "note" in rows[0] else 0)
