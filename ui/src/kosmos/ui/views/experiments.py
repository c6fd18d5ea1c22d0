"""Experiments: one experiment's runs best first, runs side by side, curves, sweeps, pictures."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from kosmos.training import sdk
from kosmos.ui.common import client, linked, mlflow_url, page, project, rounded, table

HEADLINE = ("roc_auc", "pr_auc", "accuracy", "f1", "r2", "log_loss", "rmse", "mae")
"""Which metric ranks runs when an experiment has several (the first one it logs)."""
LOWER_IS_BETTER = ("loss", "rmse", "mae", "error", "mape")


def main_metric(names: list[str]) -> str | None:
    """The metric that ranks runs: a headline one if logged, else the first of the rest."""
    return next((m for m in HEADLINE if m in names), names[0] if names else None)


def best_first(runs: list[dict[str, Any]], metric: str | None) -> list[dict[str, Any]]:
    """``runs`` ranked by ``metric`` (descending, ascending for losses and errors); runs without it last."""
    if metric is None:
        return runs
    sign = 1 if any(word in metric for word in LOWER_IS_BETTER) else -1
    return sorted(runs, key=lambda r: (metric not in r["metrics"], sign * r["metrics"].get(metric, 0.0)))


def _names(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Run id -> a unique, readable label (the run name; its id's start where names repeat)."""
    counts = pd.Series([r["run_name"] for r in runs]).value_counts()
    return {
        r["run_id"]: r["run_name"] if counts[r["run_name"]] == 1 else f"{r['run_name']} ({r['run_id'][:6]})"
        for r in runs
    }


@page
def render() -> None:
    st.title("Experiments")
    with client() as c:
        recent = sdk.list_runs(project(), limit=200, client=c)  # newest first: experiments by activity
        experiments = list(dict.fromkeys(r["experiment"] for r in recent))
        if not experiments:
            st.info("No runs yet. Train with `kosmos.training.start(...)` in a notebook.")
            return
        left, right = st.columns(2)
        linked_to = st.query_params.get("experiment")
        experiment = left.selectbox(
            "Experiment", experiments, index=experiments.index(linked_to) if linked_to in experiments else 0
        )
        st.query_params["experiment"] = experiment
        flt = right.text_input("Filter (MLflow syntax)", placeholder="metrics.roc_auc > 0.8")
        runs = sdk.list_runs(project(), experiment, filter=flt or None, client=c)
        if not runs:
            st.info("No runs match the filter.")
            return
        metrics = sorted({k for r in runs for k in r["metrics"] if not k.startswith("system/")})
        main = main_metric(metrics)
        runs = best_first(runs, main)
        names = _names(runs)
        _runs_table(runs, names, metrics, main)
        _compare(c, runs, names, metrics, main)
        _run_details(c, runs, names)


def _runs_table(runs: list[dict], names: dict[str, str], metrics: list[str], main: str | None) -> None:
    shown = ([main] if main else []) + [m for m in metrics if m != main][:6]
    params = _varying_params(runs)[:4]
    rows = [
        {
            "run": names[r["run_id"]],
            **{m: rounded(r["metrics"].get(m)) for m in shown},
            **{f"param {p}": r["params"].get(p) for p in params},
            "status": r["status"],
            "started": (r["start_time"] or "")[:16].replace("T", " "),
            "MLflow": mlflow_url(f"#/experiments/{r['experiment_id']}/runs/{r['run_id']}"),
            "run_id": r["run_id"],
        }
        for r in runs
    ]
    st.caption(f"{len(runs)} runs, best {main} first" if main else f"{len(runs)} runs, newest first")
    table(rows, column_config={"MLflow": linked("open")})


def _varying_params(runs: list[dict[str, Any]]) -> list[str]:
    """Parameters whose value differs between runs (what a sweep varied)."""
    keys = sorted({k for r in runs for k in r["params"]})
    return [k for k in keys if len({r["params"].get(k) for r in runs}) > 1]


def _compare(c: Any, runs: list[dict], names: dict[str, str], metrics: list[str], main: str | None) -> None:
    st.subheader("Compare runs")
    by_label = {names[r["run_id"]]: r["run_id"] for r in runs}
    chosen = st.multiselect("Runs", list(by_label), default=list(by_label)[:2])
    if not chosen:
        return
    ids = [by_label[x] for x in chosen]
    side = sdk.compare_runs(project(), ids, client=c).rename(columns=names)
    side = side.map(rounded)
    differs = side.apply(lambda row: row.astype(str).nunique() > 1, axis=1)
    mark = "background-color: #fff3cd"
    styled = side.style.apply(lambda row: [mark if differs[row.name] else ""] * len(row), axis=1).format(
        lambda v: f"{v:g}" if isinstance(v, float) else v
    )
    st.dataframe(styled, use_container_width=True)
    st.caption("Highlighted: what differs between the chosen runs.")
    stepped = [m for m in metrics if m.endswith(("loss", "_auc")) or "epoch" in m][:6] or metrics[:6]
    curve_metric = st.selectbox("Curve", stepped) if stepped else None
    if curve_metric:
        curves = {names[i]: curve for i in ids if (curve := _curve(c, i, curve_metric)) is not None}
        if curves:
            st.line_chart(pd.DataFrame(curves), height=260, x_label="step", y_label=curve_metric)
    params = [p for p in _varying_params(runs) if _numeric(runs, p)]
    if main and params and len(runs) >= 3:
        _sweep(runs, names, params, main)


def _curve(c: Any, run_id: str, key: str) -> pd.Series | None:
    """A metric's values by step, or None when it was logged once (no curve to draw)."""
    history = sdk.metric_history(project(), run_id, key, client=c)
    return pd.Series({h["step"]: h["value"] for h in history}) if len(history) > 1 else None


def _numeric(runs: list[dict], param: str) -> bool:
    return all(pd.notna(pd.to_numeric(r["params"].get(param), errors="coerce")) for r in runs)


def _sweep(runs: list[dict], names: dict[str, str], params: list[str], main: str) -> None:
    st.subheader("Sweep")
    frame = pd.DataFrame(
        [
            {
                "run": names[r["run_id"]],
                main: r["metrics"].get(main),
                **{p: float(r["params"][p]) for p in params},
            }
            for r in runs
        ]
    )
    param = st.selectbox("Parameter", params)
    st.scatter_chart(frame, x=param, y=main, height=260)
    if len(params) >= 2:  # parallel coordinates: each axis scaled to its own range
        long = frame.melt(id_vars=["run"], value_vars=[*params, main], var_name="axis")
        low = long.groupby("axis")["value"].transform("min")
        span = long.groupby("axis")["value"].transform("max") - low
        long["scaled"] = (long["value"] - low) / span.where(span > 0, 1)
        long[main] = long["run"].map(frame.set_index("run")[main])
        chart = (
            alt.Chart(long, title=f"Parameters and {main}, each axis from its min to its max")
            .mark_line(point=True)
            .encode(
                x=alt.X("axis:N", sort=[*params, main], title=None),
                y=alt.Y("scaled:Q", title="scaled to the axis's range"),
                color=alt.Color(f"{main}:Q", title=main),
                detail="run:N",
                tooltip=["run", "axis", "value"],
            )
        )
        st.altair_chart(chart, use_container_width=True)


def _run_details(c: Any, runs: list[dict], names: dict[str, str]) -> None:
    st.subheader("One run")
    by_label = {names[r["run_id"]]: r["run_id"] for r in runs}
    ids = list(by_label.values())
    linked = st.query_params.get("run")  # a link to one run: ?experiment=...&run=<run id>
    start = ids.index(linked) if linked in ids else 0
    run_id = by_label[st.selectbox("Run", list(by_label), index=start)]
    st.query_params["run"] = run_id
    run = next(r for r in runs if r["run_id"] == run_id)
    losses = [k for k in run["metrics"] if k.endswith("_loss")][:4]
    curves = {key: curve for key in losses if (curve := _curve(c, run_id, key)) is not None}
    if curves:
        st.line_chart(pd.DataFrame(curves), height=260, x_label="step", y_label="loss")
    images = sdk.run_images(project(), run_id, client=c)
    if images:
        columns = st.columns(min(3, len(images)))
        for i, path in enumerate(images):
            columns[i % len(columns)].image(
                sdk.run_image(project(), run_id, path, client=c), caption=path, use_container_width=True
            )
