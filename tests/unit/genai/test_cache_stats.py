"""The cache's statistics: Wilson's interval against published values, and the figures a user reads."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kosmos.genai.cache_stats import false_hits, namespace_figures, summarize, wilson


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I: 0/10 -> 0-0.2775, 1/29 -> 0.0061-0.1718
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-4)
    assert wilson(1, 29) == pytest.approx((0.0061, 0.1718), abs=5e-4)
    assert wilson(0, 0) is None
    low, high = wilson(5, 100)
    assert low < 0.05 < high and high - low < 0.1


def _row(cache: str, latency_ms: float, tokens_saved: int = 0, tokens: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        cache=cache,
        latency_ms=latency_ms,
        tokens_saved=tokens_saved,
        prompt_tokens=tokens,
        completion_tokens=0,
    )


def test_summary_counts_hits_and_estimates_false_hits_from_audits_only() -> None:
    rows = [_row("hit", 5, 40)] * 8 + [_row("miss", 900)] * 2 + [_row("skip", 800)]
    stats = summarize(rows, {"flagged": 1, "audit_agreed": 19, "audit_disagreed": 1})
    assert stats["hits"] == 8 and stats["misses"] == 2 and stats["hit_rate"] == 0.8
    assert stats["audits"] == 20 and stats["false_hit_rate"] == 0.05
    assert stats["false_hit_interval"][0] < 0.05 < stats["false_hit_interval"][1]
    assert stats["flagged_rate"] == 1 / 8 and stats["tokens_saved"] == 320
    assert stats["latency_saved_s"] == pytest.approx((900 - 5) * 8 / 1000)
    assert false_hits(stats).startswith("5.0% (") and false_hits(stats).endswith("20 audits)")
    empty = summarize([])
    assert empty["hit_rate"] is None and false_hits(empty) == "no audits yet"
    assert namespace_figures(empty)["hit_rate"] == ""


def test_the_error_bound_is_judged_on_the_whole_interval() -> None:
    from kosmos.genai.cache_stats import bound_verdict

    assert bound_verdict(None, 0.01) == "unknown"
    assert bound_verdict(wilson(0, 10), 0.01) == "unknown"  # 0 of 10 could still be 27%
    assert bound_verdict(wilson(0, 1000), 0.01) == "within"  # upper bound 0.38%
    assert bound_verdict(wilson(30, 200), 0.01) == "above"
    stats = summarize([], {"audit_agreed": 1000}, bound=0.01)
    assert stats["bound"] == "within" and false_hits(stats).endswith("within 1.0%")


def test_audits_are_weighed_against_what_the_cache_saved_not_counted_as_requests() -> None:
    rows = [_row("hit", 5, 40)] * 4 + [_row("miss", 900, 0, 40)] + [_row("audit", 950, 0, 45)]
    stats = summarize(rows, {"audit_agreed": 1})
    assert stats["requests"] == 5 and stats["outcomes"] == {"hit": 4, "miss": 1}
    assert stats["tokens_saved"] == 160 and stats["audit_tokens"] == 45
    assert stats["latency_saved_s"] == pytest.approx((900 - 5) * 4 / 1000)  # the audit's 950 ms is no miss
