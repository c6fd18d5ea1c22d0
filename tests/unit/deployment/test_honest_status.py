"""A deployment whose canary keeps failing is not shown healthy (issue 24)."""

from __future__ import annotations

from kosmos.deployment.service import honest


def test_a_canary_that_keeps_rolling_back_is_unstable_not_healthy() -> None:
    healthy = {"name": "scorer", "status": "healthy", "reason": "v1 serving"}
    shown = honest(healthy, ["error rate 9% (max 1%)", "p99 400 ms (max 250 ms)"])
    assert shown["status"] == "unstable"
    assert shown["reason"] == "2 automatic rollbacks in 15 min; last: error rate 9% (max 1%)"
    assert healthy["status"] == "healthy"  # the record's own status is not touched
    # one rollback: a canary failed once, and the rollback did its job
    assert honest(healthy, ["error rate 9% (max 1%)"]) == healthy
    failed = {"name": "scorer", "status": "failed", "reason": "no replica"}
    assert honest(failed, ["a", "b", "c"]) == failed  # worse news is kept
