"""The deployment SDK speaks pandas: DataFrames in (NaN as null, timestamps as ISO), DataFrames out."""

from __future__ import annotations

import math

import pandas as pd

from kosmos.deployment.sdk import _frame, _rows


def test_a_frame_becomes_json_rows_with_nulls_and_iso_timestamps() -> None:
    frame = pd.DataFrame(
        {
            "amount": [12.5, math.nan],
            "user_id": [1, 2],
            "at": pd.to_datetime(["2026-01-02T03:04:05Z", "2026-01-03T00:00:00Z"]),
        }
    )
    rows = _rows(frame)
    assert rows[0]["amount"] == 12.5 and rows[1]["amount"] is None and rows[1]["user_id"] == 2
    assert rows[0]["at"].startswith("2026-01-02T03:04:05")
    assert _rows([{"a": 1}]) == [{"a": 1}]


def test_answers_become_frames_on_the_input_index_with_class_labels() -> None:
    inputs = pd.DataFrame({"x": [1, 2]}, index=["a", "b"])
    probs = _frame({"predictions": [[0.9, 0.1], [0.2, 0.8]], "classes": ["legit", "fraud"]}, inputs)
    assert list(probs.columns) == ["legit", "fraud"] and list(probs.index) == ["a", "b"]
    assert probs.loc["b", "fraud"] == 0.8
    unlabeled = _frame({"predictions": [[0.9, 0.1], [0.2, 0.8]]}, inputs)
    assert list(unlabeled.columns) == ["class_0", "class_1"]
    plain = _frame({"predictions": [3.5, 4.0]}, inputs)
    assert plain["prediction"].tolist() == [3.5, 4.0]
