"""Features: the repository version, views, freshness, statistics and drift."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kosmos.features import sdk
from kosmos.ui.common import client, page, project, table


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
        table([{"feature": k, **v} for k, v in stats["features"].items()])
        st.subheader("Drift (PSI: last week against the week before)")
        with st.spinner("Comparing windows ..."):
            drift = sdk.feature_drift(project(), view, client=c)
        scores = pd.Series({k: v for k, v in drift["psi"].items() if v is not None}, name="PSI")
        if scores.empty:
            st.caption("Not enough data in both windows.")
        else:
            st.bar_chart(scores, height=240)
            if drift["drifted"]:
                st.warning("Drifted (PSI > 0.2): " + ", ".join(drift["drifted"]))
            else:
                st.success("No feature drifted (PSI <= 0.2).")
