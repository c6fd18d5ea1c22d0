"""What a replay computes from a record, without services: model inputs, comparison, agreement."""

from __future__ import annotations

import math

from kosmos.deployment.batch_replay import summarize
from kosmos.deployment.decisions import jsonable, part_of
from kosmos.deployment.replay import _same, compare, decisions_of, model_inputs


def test_model_inputs_are_the_request_with_the_recorded_features_where_it_had_none() -> None:
    record = {
        "input": [{"user_id": 1, "amount": 10.0}, {"user_id": 2, "amount": 5.0, "spend_7d": 99.0}],
        "features": {
            "spend_7d": {"view": "user_stats", "values": [120.5, 7.0]},
            "merchant_rate": {"view": "merchant_stats", "values": [None, 0.25]},
        },
    }
    assert model_inputs(record) == [
        {"user_id": 1, "amount": 10.0, "spend_7d": 120.5, "merchant_rate": None},
        {"user_id": 2, "amount": 5.0, "spend_7d": 99.0, "merchant_rate": 0.25},  # the request's value won
    ]


def test_compare_is_exact_only_for_identical_outputs() -> None:
    assert compare([[0.1, 0.9]], [[0.1, 0.9]]) == {"exact": True, "max_abs_diff": 0.0}
    near = compare([[0.1, 0.9]], [[0.1, 0.9 + 1e-12]])
    assert near["exact"] is False and 0 < near["max_abs_diff"] < 1e-11
    assert compare(["fraud"], ["ok"]) == {"exact": False, "max_abs_diff": None}


def test_decisions_are_top_classes_for_probabilities() -> None:
    assert decisions_of([[0.2, 0.8], [0.7, 0.3]], ["0", "1"]) == ["1", "0"]
    assert decisions_of([[0.2, 0.8]], None) == [1]
    assert decisions_of([3.5, "x"], None) == [3.5, "x"]


def test_agreement_per_recorded_version() -> None:
    recorded = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]
    replayed = [[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.1, 0.9]]
    summary = summarize(recorded, replayed, [1, 1, 2, 2], ["0", "1"])
    assert summary["rows"] == 4 and summary["changed"] == 1 and summary["agreement"] == 0.75
    assert summary["by_recorded_version"] == {
        "1": {"rows": 2, "agreement": 1.0},
        "2": {"rows": 2, "agreement": 0.5},
    }
    assert math.isclose(summary["mean_abs_diff"], (0.1 + 0.1 + 0.1 + 0.1 + 0.2 + 0.2) / 8)


def test_skew_compares_numbers_with_a_tolerance_and_nulls_exactly() -> None:
    assert _same(0.1, 0.1 + 1e-12) and not _same(0.1, 0.2)
    assert _same(None, None) and not _same(None, 0.0) and not _same(3, None)
    assert _same(3, 3.0) and _same("a", "a") and not _same("a", "b")


def test_a_part_is_a_small_non_negative_integer_or_zero() -> None:
    assert part_of({"_part": 3}) == 3
    assert [part_of({"_part": v}) for v in ("3", True, -1, 10**9, None, 2.0)] == [0] * 6
    assert part_of({}) == 0


def test_jsonable_drops_what_postgres_json_refuses() -> None:
    assert jsonable({"a": [math.nan, math.inf, 1.5], 2: (1, None)}) == {
        "a": [None, None, 1.5],
        "2": [1, None],
    }
