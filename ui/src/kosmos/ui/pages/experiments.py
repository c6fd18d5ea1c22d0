"""Experiments: runs with filters, metric curves, runs side by side, evaluation pictures."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kosmos.training import sdk
from kosmos.ui.common import client, page, project, table

CURVES = ("train_loss", "validation_loss")


@page
def render() -> None:
    st.title("Experiments")
    with client() as c:
        left, right = st.columns(2)
        experiment = left.text_input("Experiment", placeholder="all experiments")
        flt = right.text_input("Filter (MLflow syntax)", placeholder="metrics.roc_auc > 0.8")
        runs = sdk.list_runs(project(), experiment or None, filter=flt or None, client=c)
        if not runs:
            st.info("No runs match. Train with `kosmos.training.start(...)` in a notebook.")
            return
        metric_names = sorted({k for r in runs for k in r["metrics"]})[:8]
        rows = [
            {
                "run": r["run_name"],
                "experiment": r.get("experiment"),
                "status": r["status"],
                "started": (r["start_time"] or "")[:19],
                **{m: r["metrics"].get(m) for m in metric_names},
                "run_id": r["run_id"],
            }
            for r in runs
        ]
        table(rows)
        labels = {f"{r['run_name']} ({r['run_id'][:8]})": r["run_id"] for r in runs}
        chosen = st.multiselect("Compare runs", list(labels), default=list(labels)[:2])
        if chosen:
            compared = sdk.compare_runs(project(), [labels[x] for x in chosen], client=c)
            st.dataframe(compared, use_container_width=True)
        run_label = st.selectbox("Run", list(labels))
        run_id = labels[run_label]
        run = next(r for r in runs if r["run_id"] == run_id)
        curves = {}
        for key in [k for k in run["metrics"] if k in CURVES or k.endswith("_loss")][:4]:
            history = sdk.metric_history(project(), run_id, key, client=c)
            if len(history) > 1:
                curves[key] = pd.Series({h["step"]: h["value"] for h in history})
        if curves:
            st.subheader("Metrics over steps")
            st.line_chart(pd.DataFrame(curves), height=260)
        images = sdk.run_images(project(), run_id, client=c)
        if images:
            st.subheader("Evaluation")
            columns = st.columns(min(3, len(images)))
            for i, path in enumerate(images):
                columns[i % len(columns)].image(
                    sdk.run_image(project(), run_id, path, client=c), caption=path, use_container_width=True
                )
