"""Rollout state transitions, request checks and A/B bucketing: pure logic, no services."""

from __future__ import annotations

import pytest

from kosmos.deployment import rollouts
from kosmos.deployment.models import DeploymentRecord
from kosmos.deployment.serving import ab_bucket, check_rows
from kosmos.deployment.spec import DeploymentSpec, Strategy
from kosmos.platform.errors import Conflict


def _record(**rollout: object) -> DeploymentRecord:
    spec = DeploymentSpec(model="fraud", rollout=rollout or {})
    return DeploymentRecord(
        name="fraud",
        spec=spec.model_dump(mode="json"),
        stable_version=1,
        candidate_version=None,
        strategy="none",
        traffic={"1": 100},
        rollout_step=0,
        details={},
        generation=1,
    )


def test_a_canary_takes_no_traffic_until_ready_then_steps_and_promotes() -> None:
    r = _record(steps=[10, 50, 100])
    rollouts.start(r, 2)
    assert r.candidate_version == 2 and rollouts.router_config(r)["traffic"] == {"1": 100}
    rollouts.candidate_ready(r)
    assert rollouts.router_config(r)["traffic"] == {"1": 90, "2": 10}
    assert rollouts.next_step(r) is False and r.traffic == {"1": 50, "2": 50}
    assert rollouts.next_step(r) is False and r.traffic == {"1": 0, "2": 100}
    assert rollouts.next_step(r) is True
    assert (r.stable_version, r.candidate_version, r.traffic) == (2, None, {"2": 100})
    assert r.details["previous_version"] == 1 and r.details["retiring"] == [1]
    assert r.generation == 6  # every change is a new generation for the reconciler


def test_rollback_drops_the_candidate_or_returns_to_the_previous_version() -> None:
    r = _record()
    rollouts.start(r, 2)
    rollouts.candidate_ready(r)
    assert rollouts.rollback(r, "bad") == 1
    assert r.traffic == {"1": 100} and r.details["last_rollback"]["version"] == 2
    assert r.details["last_rollback"]["reason"] == "bad" and r.details["last_rollback"]["at"]
    with pytest.raises(Conflict, match="no earlier version"):
        rollouts.rollback(r, "again")
    rollouts.start(r, 3, Strategy.direct)
    rollouts.candidate_ready(r)
    rollouts.promote(r)
    assert rollouts.rollback(r, "regression") == 1 and r.details["retiring"] == [2, 3]


def test_one_rollout_at_a_time_and_no_rollout_to_the_serving_version() -> None:
    r = _record()
    with pytest.raises(Conflict, match="already serves v1"):
        rollouts.start(r, 1)
    rollouts.start(r, 2)
    with pytest.raises(Conflict, match="already rolling out v2"):
        rollouts.start(r, 3)


def test_shadow_and_ab_policies() -> None:
    r = _record()
    rollouts.start(r, 2, Strategy.shadow)
    rollouts.candidate_ready(r)
    assert rollouts.router_config(r) == {
        "traffic": {"1": 100, "2": 0},
        "shadow": 2,
        "stable": 1,
        "model": "fraud",
        "log_sample_rate": 1.0,  # every request gets a decision record unless the spec says less
        "retention_days": 30,
        "missing_entities": "reject",  # an unknown entity is a 404 unless the spec says impute
    }
    ab = _record(strategy="ab", ab_key="user_id", ab_split=20)
    rollouts.start(ab, 2)
    rollouts.candidate_ready(ab)
    config = rollouts.router_config(ab)
    assert (
        config["traffic"] == {"1": 80, "2": 20}
        and config["ab_version"] == 2
        and config["ab_key"] == "user_id"
    )


def test_spec_rejects_bad_rollouts_with_reasons() -> None:
    with pytest.raises(ValueError, match="must end at 100"):
        DeploymentSpec(model="m", rollout={"steps": [5, 50]})
    with pytest.raises(ValueError, match="rise strictly"):
        DeploymentSpec(model="m", rollout={"steps": [50, 5, 100]})
    with pytest.raises(ValueError, match="needs ab_key"):
        DeploymentSpec(model="m", rollout={"strategy": "ab"})
    with pytest.raises(ValueError, match="exceeds max_replicas"):
        DeploymentSpec(model="m", autoscaling={"min_replicas": 3, "max_replicas": 2})


def test_ab_buckets_are_stable_and_roughly_even() -> None:
    assert ab_bucket("fraud", 42) == ab_bucket("fraud", 42)
    share = sum(ab_bucket("fraud", k) < 30 for k in range(5000)) / 5000
    assert 0.27 < share < 0.33


def test_check_rows_names_every_bad_field() -> None:
    columns = {"amount": "double", "count": "long", "country": "string"}
    problems = check_rows(
        [{"amount": "x", "count": 1.5, "country": "DE", "extra": 1}, {"amount": None, "count": 2}],
        columns,
        "m v1",
    )
    assert problems == [
        {"field": "inputs[0].extra", "reason": "not an input of m v1"},
        {"field": "inputs[0].amount", "reason": "must be a number, got 'x'"},
        {"field": "inputs[0].count", "reason": "must be an integer, got 1.5"},
        {"field": "inputs[1].country", "reason": "missing (string)"},
    ]
    assert check_rows([{"amount": None, "count": 2, "country": "DE"}], columns, "m") == []  # a NaN
    for infinite in (float("inf"), float("-inf"), float("nan"), 1e999):
        assert check_rows([{"amount": infinite, "count": 2, "country": "DE"}], columns, "m") == [
            {"field": "inputs[0].amount", "reason": f"must be a finite number, got {infinite!r}"}
        ]
    assert check_rows([], columns, "m") == [
        {"field": "inputs", "reason": "give a non-empty list of rows, e.g. [{'amount': 12.5, ...}]"}
    ]
    assert "at most 1000 rows" in check_rows([{}] * 1001, columns, "m")[0]["reason"]


def _following(monkeypatch, alias_at: list[int]):
    """A reconciler whose registry says the alias points at ``alias_at[0]``, moved through Kosmos by
    alice (the registry and the audit log are the seams faked here; the integration suite runs both)."""
    from kosmos.deployment import reconciler, service

    monkeypatch.setattr(service, "resolve", lambda settings, project, model, version: alias_at[0])
    monkeypatch.setattr(reconciler, "promoted_through_kosmos", lambda *args: "alice")
    r = reconciler.Reconciler(settings=None, database=None)  # type: ignore[arg-type]
    audited: list[str] = []
    monkeypatch.setattr(r, "_audit", lambda session, project, record, action, **kw: audited.append(action))
    return r, audited


def test_an_explicit_rollout_and_promote_stand_until_the_alias_really_moves(monkeypatch) -> None:
    alias_at = [2]
    reconciler, audited = _following(monkeypatch, alias_at)
    r = _record()
    r.stable_version, r.traffic = 2, {"2": 100}
    rollouts.settle_alias(r, 2)  # created following champion at v2
    rollouts.start(r, 3)  # a person rolls out v3 while champion stays at v2 ...
    rollouts.settle_alias(r, alias_at[0])
    rollouts.promote(r)  # ... and promotes it
    for _ in range(3):
        reconciler._follow_alias(None, "p", r)
    assert (r.stable_version, r.candidate_version, audited) == (3, None, [])  # not undone to v2
    alias_at[0] = 4  # the alias really moves: that is rolled out
    reconciler._follow_alias(None, "p", r)
    assert r.candidate_version == 4 and audited == ["deployment.follow_alias"]


def test_a_canary_that_failed_is_not_rolled_out_again_until_the_alias_moves(monkeypatch) -> None:
    alias_at = [3]
    reconciler, audited = _following(monkeypatch, alias_at)
    r = _record()
    rollouts.settle_alias(r, 1)
    reconciler._follow_alias(None, "p", r)  # champion moved to v3: its canary starts
    assert r.candidate_version == 3
    rollouts.rollback(r, "canary v3 breached its SLO")
    for _ in range(5):
        reconciler._follow_alias(None, "p", r)
    assert (r.stable_version, r.candidate_version) == (1, None)
    assert audited == ["deployment.follow_alias"]  # once, not a loop
    from kosmos.deployment.reconciler import _held_back

    note = _held_back(r)
    assert "champion points at v3, rolled back" in note and "kosmos deploy rollout" in note
    rollouts.start(r, 3)  # a person retries: allowed
    rollouts.settle_alias(r, 3)
    assert r.candidate_version == 3 and _held_back(r) == ""


def test_an_alias_that_moves_during_a_canary_is_rolled_out_after_it(monkeypatch) -> None:
    alias_at = [3]
    reconciler, audited = _following(monkeypatch, alias_at)
    r = _record()
    rollouts.settle_alias(r, 1)
    reconciler._follow_alias(None, "p", r)
    alias_at[0] = 4  # moved while v3's canary runs: nothing happens yet
    reconciler._follow_alias(None, "p", r)
    assert r.candidate_version == 3
    rollouts.promote(r)
    reconciler._follow_alias(None, "p", r)
    assert (r.stable_version, r.candidate_version) == (3, 4) and audited == ["deployment.follow_alias"] * 2


def test_a_canary_step_stops_once_its_error_slo_cannot_be_met() -> None:
    from kosmos.deployment.spec import slo_lost

    assert not slo_lost(0, 0, 0.01, 20)
    assert slo_lost(1, 1, 0.01, 20)  # 1% of 20 requests allows no failure: the first one ends it
    assert not slo_lost(1, 3, 0.05, 20) and slo_lost(2, 3, 0.05, 20)  # 5% of 20 allows one
    assert not slo_lost(4, 100, 0.05, 20) and slo_lost(6, 100, 0.05, 20)  # past 20: the rate so far
    r = _record()
    rollouts.start(r, 2)
    assert "canary" not in rollouts.router_config(r)  # not taking traffic yet
    rollouts.candidate_ready(r)
    assert rollouts.router_config(r)["canary"] == {
        "version": 2, "step": r.rollout_step, "max_error_rate": 0.01, "min_requests": 20,
    }  # fmt: skip
