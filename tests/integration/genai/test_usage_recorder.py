"""The gateway's usage rows are written off the request's path, in batches, on the real
metadata databases; a database outage loses nothing, and neither does a clean stop (the
interpreter's exit, the app's shutdown)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from kosmos.deployment.decisions import DecisionRecorder
from kosmos.deployment.models import DecisionRow
from kosmos.genai.models_db import LLMUsage
from kosmos.genai.usage import UsageRecorder
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Project


@pytest.fixture
def project(database_url: str, make_project):
    database = Database(database_url)
    yield database, make_project(database)
    database.dispose()


def _row(i: int) -> dict:
    return {
        "deployment": "support-llm",
        "endpoint": "chat",
        "request_id": f"req-{i:05d}",
        "prompt_tokens": 10 + i,
        "completion_tokens": 3,
        "latency_ms": 12.5,
        "status": "ok",
    }


def _stored(database: Database, project_id: int) -> list[LLMUsage]:
    with database.transaction() as session:
        query = select(LLMUsage).where(LLMUsage.project_id == project_id).order_by(LLMUsage.id)
        return list(session.scalars(query))


def test_rows_are_written_in_batches_after_the_call_with_its_time(project) -> None:
    database, project_id = project
    traced: list[str] = []
    recorder = UsageRecorder(database, flush_s=2, max_batch=40)
    try:
        before = datetime.now(UTC)
        for i in range(100):
            recorder.add(project_id, "ana", _row(i), lambda i=i: traced.append(f"req-{i:05d}"))
        assert recorder.pending() == 100 and _stored(database, project_id) == []  # nothing on the path
        deadline = time.monotonic() + 10
        while recorder.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = _stored(database, project_id)
    finally:
        recorder.close()
    assert [r.request_id for r in rows] == [f"req-{i:05d}" for i in range(100)]  # all, in order
    assert traced == [r.request_id for r in rows]  # traced once each, after their row is stored
    assert all(r.actor == "ana" and before <= r.at.replace(tzinfo=UTC) for r in rows)
    assert rows[-1].prompt_tokens == 109


def test_a_database_outage_keeps_the_rows_until_it_is_back(project) -> None:
    database, project_id = project
    down = Database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=1")
    recorder = UsageRecorder(down, flush_s=3600)
    try:
        for i in range(5):
            recorder.add(project_id, "ana", _row(i))
        assert recorder.flush() == 0 and recorder.pending() == 5  # nothing lost, nothing half-written
        recorder.database = database  # the database is back
        assert recorder.flush() == 5
    finally:
        recorder.close()
        down.dispose()
    assert [r.request_id for r in _stored(database, project_id)] == [f"req-{i:05d}" for i in range(5)]


def test_a_process_that_exits_cleanly_writes_every_queued_row(project, database_url: str) -> None:
    database, project_id = project
    script = textwrap.dedent(
        f"""
        from kosmos.genai.usage import UsageRecorder
        from kosmos.platform.db.engine import Database

        recorder = UsageRecorder(Database({database_url!r}), flush_s=3600)  # never on its own
        for i in range(250):
            recorder.add({project_id}, "ana", {{
                "deployment": "d", "endpoint": "chat", "request_id": f"exit-{{i}}",
                "latency_ms": 1.0, "status": "ok",
            }})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with database.transaction() as session:
        count = session.scalar(select(func.count()).where(LLMUsage.project_id == project_id))
    assert count == 250


@pytest.mark.parametrize("plane", ["control", "data"])
def test_the_apps_shutdown_writes_its_gateways_queued_rows(project, plane: str) -> None:
    from kosmos.genai.api import dataplane, router

    database, project_id = project
    app = FastAPI()
    app.include_router(router if plane == "control" else dataplane)
    recorder = UsageRecorder(database, flush_s=3600)
    decisions = DecisionRecorder(database, flush_s=3600)
    app.state.gateway = SimpleNamespace(recorder=recorder, decisions=decisions)  # what gateway_of() leaves
    with database.transaction() as session:
        name = session.get(Project, project_id).name
    with TestClient(app):
        for i in range(7):
            recorder.add(project_id, "ana", _row(i))
            decisions.add(
                {"project": name, "deployment": "d", "kind": "llm", "request_id": f"req-{i:05d}",
                 "at": time.time(), "status": "ok"}
            )  # fmt: skip
        assert _stored(database, project_id) == []
    # the server stopped (its lifespan's shutdown, as uvicorn and Serve run it): the rows are there
    assert len(_stored(database, project_id)) == 7 and recorder.pending() == 0
    with database.transaction() as session:
        kept = session.scalars(select(DecisionRow.request_id).where(DecisionRow.project_id == project_id))
        assert sorted(kept) == [f"req-{i:05d}" for i in range(7)]  # and every decision record
