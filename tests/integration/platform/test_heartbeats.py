"""Background services' heartbeats, as /readyz and `kosmos doctor` report them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kosmos.platform import heartbeats
from kosmos.platform.doctor import run_checks


def test_a_failing_pass_is_degraded_not_unready_and_a_later_good_pass_clears_it(platform_env) -> None:
    db, client = platform_env.database, platform_env.client
    assert client.get("/readyz").json() == {"status": "ready", "problems": {}, "degraded": {}}
    cause = "ServiceUnavailable: Ray at x:1 is unreachable"
    heartbeats.beat(db, "reconciler", ok=False, detail=cause, every_s=2)
    response = client.get("/readyz")
    assert response.status_code == 200  # the API serves: no load balancer should drop it
    body = response.json()
    assert body["status"] == "degraded"
    assert body["degraded"]["reconciler"].startswith(f"{cause} (reported ")
    [check] = [c for c in run_checks(platform_env.settings) if c.service == "reconciler"]
    assert check.status == "FAIL" and "Ray at x:1" in check.detail
    heartbeats.beat(db, "reconciler", ok=True, detail="reconciled", every_s=2)  # the same row, updated
    assert client.get("/readyz").json()["degraded"] == {}
    [check] = [c for c in run_checks(platform_env.settings) if c.service == "reconciler"]
    assert check.status == "ok"


def test_a_service_that_went_silent_is_reported_as_stopped(platform_env) -> None:
    db = platform_env.database
    heartbeats.beat(db, "reconciler", ok=True, detail="reconciled", every_s=2)
    soon, later = datetime.now(UTC) + timedelta(seconds=50), datetime.now(UTC) + timedelta(seconds=70)
    assert heartbeats.problems(db, now=soon) == {}  # at least a minute of silence, even for a 2 s loop
    problem = heartbeats.problems(db, now=later)["reconciler"]
    assert problem.stale and problem.cause == "stopped reporting (its last pass: reconciled)"
    heartbeats.beat(db, "slow", ok=True, detail="done", every_s=60)
    assert "slow" not in heartbeats.problems(db, now=datetime.now(UTC) + timedelta(seconds=300))
    assert "slow" in heartbeats.problems(db, now=datetime.now(UTC) + timedelta(seconds=400))


def test_a_detail_longer_than_its_column_is_cut_not_lost(platform_env) -> None:
    heartbeats.beat(platform_env.database, "reconciler", ok=False, detail="x" * 5000, every_s=2)
    assert len(heartbeats.problems(platform_env.database)["reconciler"].cause) == 512
