"""Deployments: status, traffic split, live latency and errors, promote and roll back."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from kosmos.deployment import sdk
from kosmos.platform import Role
from kosmos.ui.common import act, client, needs, page, project, table

BADGE = {
    "healthy": ":green[●]",
    "degraded": ":orange[●]",
    "failed": ":red[●]",
    "deploying": ":blue[●]",
    "pending": ":gray[●]",
}


@page
def render() -> None:
    st.title("Deployments")
    with client() as c:
        deployments = sdk.list_deployments(project(), client=c)
        if not deployments:
            st.info("No deployments: `kosmos deploy create NAME --model MODEL -p PROJECT`.")
            return
        table(
            [
                {
                    "name": d["name"],
                    "model": d["model"],
                    "status": d["status"],
                    "stable": d["stable_version"],
                    "candidate": d["candidate_version"],
                    "strategy": d["strategy"],
                    "reason": d["reason"],
                }
                for d in deployments
            ]
        )
        name = st.selectbox("Deployment", [d["name"] for d in deployments])
        state = sdk.status(project(), name, client=c)
        st.markdown(f"**{BADGE.get(state['status'], '')} {state['status']}**: {state['reason'] or ''}")
        left, right = st.columns(2)
        with left:
            st.subheader("Traffic")
            traffic = pd.Series(
                {f"v{k}": v for k, v in (state["traffic"] or {}).items()}, name="% of requests"
            )
            st.bar_chart(traffic, height=220)
        with right:
            st.subheader("Live stats")
            stats: dict = {}
            try:
                stats = sdk.stats(project(), name, client=c)
            except Exception as exc:  # a deployment that is not up has no live stats
                st.caption(f"No live stats: {exc}")
            per_version = {k: v for k, v in stats.items() if isinstance(v, dict) and "requests" in v}
            if per_version:
                frame = pd.DataFrame(per_version).T
                frame.index = [f"v{v}" for v in frame.index]
                latency = frame[["p50_ms", "p99_ms"]].astype(float)
                st.bar_chart(latency, stack=False, height=180, y_label="ms")
                table(frame.reset_index(names="version"))
        st.subheader("Steer the rollout")
        reason = st.text_input("Reason (kept in the audit log)", key=f"reason-{name}").strip()
        cols = st.columns(2)
        no_candidate = state["candidate_version"] is None
        why = "No candidate to promote." if no_candidate else None
        promote = needs(Role.developer, disabled=no_candidate, why=why)
        steer = None
        if cols[0].button("Promote the candidate", **promote):
            steer = ("Promoting ...", sdk.promote, "Promoted.")
        if cols[1].button("Roll back", **needs(Role.developer)):
            steer = ("Rolling back ...", sdk.rollback, "Rolled back.")
        if steer and not reason:
            st.error("Give a reason: it is kept in the audit log.")
        elif steer:
            label, action, done = steer
            act(label, lambda: action(project(), name, reason=reason, client=c), done)
