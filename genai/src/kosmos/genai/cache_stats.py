"""What the semantic cache did, from the usage rows: hits, misses, audits, the estimated false-hit
rate with its confidence interval, tokens and latency saved; for a project or per namespace.

The false-hit rate is estimated from audits: for a random share (``audit_rate``) of served hits the
model answers the question again in the background and the two answers are compared. Audits are
drawn at random among hits, so the share that disagreed estimates the share of served hits that
were wrong; the interval is Wilson's score interval at 95%.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

Z95 = 1.959964


def wilson(errors: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion (None with no trials): unlike the normal
    approximation it stays inside [0, 1] and is honest for 0 errors in few trials."""
    if trials <= 0:
        return None
    p = errors / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def false_hits(stats: dict[str, Any]) -> str:
    """The estimate as people read it: ``0.0% (0.0-3.6%, 100 audits)``, or ``no audits yet``."""
    if not stats.get("audits"):
        return "no audits yet"
    low, high = stats["false_hit_interval"]
    text = f"{stats['false_hit_rate']:.1%} ({low:.1%}-{high:.1%}, {stats['audits']} audits)"
    if stats.get("bound") in ("within", "above"):
        text += f", {stats['bound']} {stats['max_false_hit_rate']:.1%}"
    return text


def namespace_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """A namespace's statistics flattened into table columns."""
    rate = stats.get("hit_rate")
    return {
        "hits": stats["hits"],
        "misses": stats["misses"],
        "hit_rate": f"{rate:.0%}" if rate is not None else "",
        "false_hits": false_hits(stats),
        "flagged": stats["flagged"],
        "tokens_saved": stats["tokens_saved"],
    }


def bound_verdict(interval: tuple[float, float] | None, bound: float) -> str:
    """``within`` (the whole 95% interval under ``bound``), ``above`` (all of it over), or
    ``unknown`` (too few audits to tell)."""
    if interval is None:
        return "unknown"
    low, high = interval
    return "within" if high <= bound else "above" if low > bound else "unknown"


def summarize(
    rows: Iterable[Any], events: dict[str, int] | None = None, bound: float | None = None
) -> dict[str, Any]:
    """Figures over usage rows carrying ``cache``, ``latency_ms``, ``tokens_saved`` and the token
    counts, and the cache events of the same window (``flagged``, ``audit_agreed``,
    ``audit_disagreed`` counts). ``audit_tokens``: what the audits' model calls cost, to weigh
    against ``tokens_saved``."""
    events = events or {}
    flagged = events.get("flagged", 0)
    disagreed = events.get("audit_disagreed", 0)
    audits = disagreed + events.get("audit_agreed", 0)
    rows = list(rows)
    audit_tokens = sum(r.prompt_tokens + r.completion_tokens for r in rows if r.cache == "audit")
    rows = [r for r in rows if r.cache != "audit"]  # the audits' own model calls are not requests
    outcomes: dict[str, int] = {}
    for row in rows:
        outcomes[row.cache] = outcomes.get(row.cache, 0) + 1
    hits, misses = outcomes.get("hit", 0), outcomes.get("miss", 0)
    hit_ms = [r.latency_ms for r in rows if r.cache == "hit"]
    miss_ms = [r.latency_ms for r in rows if r.cache in ("miss", "refresh")]
    saved_ms = (np.mean(miss_ms) - np.mean(hit_ms)) * hits if hit_ms and miss_ms else None
    interval = wilson(disagreed, audits)
    figures: dict[str, Any] = {}
    if bound is not None:
        figures = {"max_false_hit_rate": bound, "bound": bound_verdict(interval, bound)}
    return {
        **figures,
        "requests": len(rows),
        "outcomes": outcomes,
        "hits": hits,
        "misses": misses,
        "hit_rate": hits / (hits + misses) if hits + misses else None,
        "audits": audits,
        "audits_disagreed": disagreed,
        "false_hit_rate": disagreed / audits if audits else None,
        "false_hit_interval": list(interval) if interval else None,
        "flagged": flagged,
        "flagged_rate": flagged / hits if hits else None,
        "tokens_saved": int(sum(r.tokens_saved for r in rows)),
        "audit_tokens": int(audit_tokens),
        "hit_latency_p50_ms": float(np.percentile(hit_ms, 50)) if hit_ms else None,
        "miss_latency_p50_ms": float(np.percentile(miss_ms, 50)) if miss_ms else None,
        "latency_saved_s": round(saved_ms / 1000, 3) if saved_ms is not None else None,
    }
