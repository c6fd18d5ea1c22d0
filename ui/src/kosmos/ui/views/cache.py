"""Cache: hit rate, tokens and time saved, namespaces, flush."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kosmos.genai import sdk
from kosmos.genai.cache_stats import false_hits, namespace_figures
from kosmos.platform import Role
from kosmos.ui.common import act, client, needs, page, project, table


@page
def render() -> None:
    st.title("Semantic cache")
    with client() as c:
        hours = st.select_slider("Window", options=[1, 6, 24, 168], value=24, format_func=lambda h: f"{h} h")
        stats = sdk.cache_stats(project(), hours=hours, client=c)
        cols = st.columns(5)
        cols[0].metric("Hit rate", f"{(stats.get('hit_rate') or 0):.0%}")
        cols[1].metric(
            "Estimated false hits",
            f"{stats['false_hit_rate']:.1%}" if stats.get("audits") else "n/a",
            help="Share of audited would-be hits whose cached answer disagreed with the model's fresh "
            "one; " + false_hits(stats) + " (95% interval). Raise the policy's audit_rate for a "
            "tighter interval.",
        )
        cols[2].metric("Tokens saved", stats.get("tokens_saved", 0))
        cols[3].metric("Entries", stats.get("entries", 0))
        cols[4].metric("Flagged answers", stats.get("flagged", 0))
        outcomes = stats.get("outcomes") or {}
        if outcomes:
            st.bar_chart(pd.Series(outcomes, name="requests"), height=200)
        namespaces = sdk.cache_namespaces(project(), hours=hours, client=c)
        if namespaces:
            st.subheader("Namespaces")
            keep = ["id", "model", "model_version", "prompt", "threshold", "entries"]
            table([{**{k: n[k] for k in keep}, **namespace_figures(n["stats"])} for n in namespaces])
        with st.expander("Flush the project's cache"):
            sure = st.checkbox("Yes, drop every cached answer of this project")
            if st.button("Flush", **needs(Role.maintainer, disabled=not sure)):
                act(
                    "Flushing ...",
                    lambda: sdk.flush_cache(project(), client=c),
                    lambda n: f"Flushed: {n} cached answers dropped.",
                )
