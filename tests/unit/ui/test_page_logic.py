"""The web UI's own rules, apart from Streamlit: runs ranked by the right metric, nested values a
person can read, staleness and the drift chart."""

from __future__ import annotations

import pandas as pd
import pytest

from kosmos.ui.common import readable, rounded
from kosmos.ui.views.experiments import best_first, main_metric
from kosmos.ui.views.features import drift_chart, staleness


def test_runs_rank_by_the_headline_metric_in_its_direction() -> None:
    assert main_metric(["f1", "log_loss", "roc_auc"]) == "roc_auc"
    assert main_metric(["my_score"]) == "my_score" and main_metric([]) is None
    runs = [{"run_id": k, "metrics": m} for k, m in (("a", {"rmse": 3.0}), ("b", {}), ("c", {"rmse": 1.5}))]
    assert [r["run_id"] for r in best_first(runs, "rmse")] == ["c", "a", "b"]  # lower is better; missing last
    runs = [{"run_id": k, "metrics": {"roc_auc": v}} for k, v in (("a", 0.7), ("b", 0.9))]
    assert [r["run_id"] for r in best_first(runs, "roc_auc")] == ["b", "a"]


def test_nested_values_read_as_text_and_floats_are_rounded() -> None:
    assert readable({"champion": 1, "challenger": 2}) == "champion: 1 · challenger: 2"
    assert readable(["a", 0.0018079999999827123, None]) == "a, 0.001808, "
    assert rounded(0.0018079999999827123) == 0.001808 and rounded(1234567.0) == 1235000.0
    assert rounded(7) == 7 and rounded("x") == "x" and rounded(0.0) == 0.0


def test_stale_feature_data_is_called_stale() -> None:
    assert "past the view's TTL of 24 h" in staleness(688 * 3600, 24 * 3600)
    assert staleness(3600, 24 * 3600) is None
    assert "688 h old" in staleness(688 * 3600, None)  # no TTL: a day is the limit
    assert staleness(None, None) is None


def test_the_drift_chart_starts_at_zero_and_draws_the_threshold() -> None:
    scores = pd.Series({"amount": 0.004, "merchant_risk_score_30d": 0.01}, name="PSI")
    spec = drift_chart(scores, 0.2).to_dict()
    bars, marks = spec["layer"]
    assert bars["encoding"]["x"]["scale"]["domain"] == [0, pytest.approx(0.3)]  # 0.004 looks small
    assert marks["mark"]["type"] == "tick" and marks["encoding"]["x"]["field"] == "limit"
    assert {row["limit"] for row in spec["datasets"][spec["data"]["name"]]} == {0.2}  # on every row
    assert bars["encoding"]["y"]["axis"]["labelLimit"] >= 300  # long feature names are not cut
    assert bars["encoding"]["y"]["sort"] == ["merchant_risk_score_30d", "amount"]  # most drifted first
