"""Datasets: versions, schema and statistics."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kosmos.training import sdk
from kosmos.ui.common import client, page, project, table


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
            with st.spinner("Loading the data ..."):
                frame = sdk.load_dataset(project(), name, version, client=c)
            numeric = frame.select_dtypes("number")
            if numeric.empty:
                st.caption("No numeric columns.")
            else:
                stats = numeric.describe().T
                stats.insert(0, "nulls", frame[numeric.columns].isna().mean().round(4))
                st.dataframe(stats, use_container_width=True)
            if "label" in frame.columns:
                st.bar_chart(pd.Series(frame["label"]).value_counts().sort_index(), height=200)
