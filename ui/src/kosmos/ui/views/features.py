"""Features: the repository version, views, freshness, statistics and drift."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from kosmos.features import sdk
from kosmos.ui.common import client, page, project, rounded, table

STALE_S = 24 * 3600


@page
def render() -> None:
    st.title("Features")
    with client() as c:
        described = sdk.list_features(project(), client=c)
        views = described.get("feature_views", [])
        cols = st.columns(4)
        cols[0].metric("Repository version", described.get("version") or "none")
        cols[1].metric("Feature views", len(views))
        cols[2].metric("Feature services", len(described.get("feature_services", [])))
        last = described.get("last_run") or {}
        cols[3].metric("Last pipeline run", last.get("status", "never"))
        if last.get("status") == "failed":
            when = (last.get("finished_at") or last.get("started_at") or "")[:19].replace("T", " ")
            st.error(f"The pipeline run of {when} UTC failed: {last.get('error') or 'no reason recorded'}")
        if not views:
            st.info(
                "No feature views yet: upload your tables (`kosmos features upload TABLE FILE -p PROJECT`) "
                "and apply your repository (`kosmos features apply ./feature_repo -p PROJECT`)."
            )
            return
        view = st.selectbox("Feature view", views)
        stats = sdk.feature_stats(project(), view, client=c)
        fresh = stats.get("freshness_seconds")
        cols = st.columns(3)
        cols[0].metric("Rows", stats["rows"])
        cols[1].metric("Latest event", (stats.get("latest_event") or "none")[:19])
        cols[2].metric("Freshness", f"{fresh / 3600:.1f} h" if fresh is not None else "n/a")
        warning = staleness(fresh, stats.get("ttl_seconds"))
        if warning:
            st.warning(warning)
        table([{"feature": k, **{m: rounded(x) for m, x in v.items()}} for k, v in stats["features"].items()])
        st.subheader("Drift (PSI: last week against the week before)")
        with st.spinner("Comparing windows ..."):
            drift = sdk.feature_drift(project(), view, client=c)
        scores = pd.Series({k: v for k, v in drift["psi"].items() if v is not None}, name="PSI")
        if scores.empty:
            st.caption("Not enough data in both windows.")
            return
        limit = drift["threshold"]
        st.altair_chart(drift_chart(scores, limit), use_container_width=True)
        if drift["drifted"]:
            st.warning(f"Drifted (PSI > {limit}): " + ", ".join(drift["drifted"]))
        else:
            st.success(f"No feature drifted (PSI <= {limit}).")


def staleness(fresh: float | None, ttl: float | None) -> str | None:
    """A warning when the newest event is older than the view's TTL (online reads then return
    nothing for it) or, without a TTL, older than ``STALE_S``; None when the data is fresh."""
    if fresh is None:
        return None
    hours = fresh / 3600
    if ttl and fresh > ttl:
        return (
            f"Stale: the newest event is {hours:,.0f} h old, past the view's TTL of {ttl / 3600:,.0f} h: "
            "online lookups return no value for it. Run the pipelines, or check the source."
        )
    if not ttl and fresh > STALE_S:
        return f"The newest event is {hours:,.0f} h old. Run the pipelines, or check the source."
    return None


def drift_chart(scores: pd.Series, limit: float) -> alt.LayerChart:
    """PSI per feature on a scale from 0 to at least 1.5 ``limit`` (a PSI of 0.004 looks small),
    with ``limit`` marked on every row."""
    frame = scores.sort_values(ascending=False).rename_axis("feature").reset_index().assign(limit=limit)
    top = max(1.5 * limit, float(scores.max()) * 1.1)
    base = alt.Chart(frame, title="PSI per feature (the black mark: the drift threshold)").encode(
        y=alt.Y("feature:N", sort=list(frame["feature"]), title=None, axis=alt.Axis(labelLimit=320))
    )
    bars = base.mark_bar().encode(
        x=alt.X("PSI:Q", scale=alt.Scale(domain=[0, top]), title="PSI"),
        color=alt.condition(f"datum.PSI > {limit}", alt.value("#d97706"), alt.value("#1d4ed8")),
        tooltip=["feature", alt.Tooltip("PSI:Q", format=".4f")],
    )
    marks = base.mark_tick(color="black", thickness=2).encode(x="limit:Q")
    return (bars + marks).properties(height=alt.Step(28))
