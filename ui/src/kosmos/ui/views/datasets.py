"""Datasets: versions, schema and statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from kosmos.training import sdk
from kosmos.ui.common import client, page, project, rounded, table

LOAD_LIMIT = 50_000
"""Past this many rows, the data is downloaded only when asked (the statistics need no download)."""
LABELS = ("label", "target", "class", "y")


@page
def render() -> None:
    st.title("Datasets")
    with client() as c:
        datasets = sdk.list_datasets(project(), client=c)
        if not datasets:
            st.info("No datasets yet: `kosmos.datasets.register(name, frame)` in a notebook.")
            return
        table(
            [{k: d.get(k) for k in ("name", "version", "rows", "created_by", "created_at")} for d in datasets]
        )
        name = st.selectbox("Dataset", [d["name"] for d in datasets])
        versions = sdk.dataset_versions(project(), name, client=c)
        table(
            [
                {k: v.get(k) for k in ("version", "rows", "content_hash", "created_by", "created_at")}
                for v in versions
            ]
        )
        version = st.selectbox("Version", [v["version"] for v in reversed(versions)])
        meta = sdk.dataset_version(project(), name, version, client=c)
        left, right = st.columns([1, 2])
        with left:
            st.subheader("Schema")
            table([{"column": k, "type": v} for k, v in meta["schema"].items()])
        with right:
            st.subheader("Statistics")
            stats = pd.DataFrame(meta.get("stats") or {}).T  # computed at registration: no download
            if not stats.empty:
                st.dataframe(stats.map(rounded), use_container_width=True)
        rows = int(meta.get("rows") or 0)
        if rows > LOAD_LIMIT and not st.toggle(f"Load all {rows:,} rows for histograms"):
            st.caption(f"{rows:,} rows: histograms and class balance load on request.")
            return
        with st.spinner("Loading the data ..."):
            frame = sdk.load_dataset(project(), name, version, client=c)
        _distributions(frame)


def _distributions(frame: pd.DataFrame) -> None:
    st.subheader("Distributions")
    numeric = [c for c in frame.select_dtypes("number").columns if frame[c].nunique() > 2]
    if numeric:
        column = st.selectbox("Column", numeric)
        counts, edges = np.histogram(frame[column].dropna(), bins=30)
        bins = pd.DataFrame({column: (edges[:-1] + edges[1:]) / 2, "rows": counts})
        st.bar_chart(bins, x=column, y="rows", height=220, x_label=column, y_label="rows")
    labels = [c for c in frame.columns if c in LABELS or (frame[c].nunique() <= 2 and c not in numeric)]
    for label in labels[:1]:
        balance = frame[label].value_counts(normalize=True).sort_index()
        st.caption(f"Class balance of `{label}`: " + ", ".join(f"{k}: {v:.1%}" for k, v in balance.items()))
        st.bar_chart(balance.rename("share of rows"), height=180, x_label=label, y_label="share of rows")
