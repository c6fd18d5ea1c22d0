"""Deployments: an honest status (the API's), the rollout's timeline, latency and errors over time against the
SLO, the traffic split, and promote or roll back (with a reason, for the roles that may)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from kosmos.deployment import sdk
from kosmos.platform import Role, get_settings
from kosmos.ui.common import act, client, needs, page, project, readable, table

BADGE = {
    "healthy": ":green[●]",
    "degraded": ":orange[●]",
    "unstable": ":orange[●]",
    "failed": ":red[●]",
    "deploying": ":blue[●]",
    "pending": ":gray[●]",
}
WINDOW_S = 3600


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
                    "status": f"{BADGE.get(d['status'], '')} {d['status']}",
                    "stable": d["stable_version"],
                    "candidate": d["candidate_version"],
                    "strategy": d["strategy"],
                    "reason": d["reason"],
                }
                for d in deployments
            ]
        )
        names = [d["name"] for d in deployments]
        linked = st.query_params.get("deployment")
        name = st.selectbox("Deployment", names, index=names.index(linked) if linked in names else 0)
        st.query_params["deployment"] = name
        state = sdk.status(project(), name, client=c)
        events = sdk.events(project(), name, client=c)
        # unstable: the API's word for a canary rolled back again and again (healthy otherwise)
        st.markdown(f"**{BADGE.get(state['status'], '')} {state['status']}**: {state['reason'] or ''}")
        _over_time(c, name, state)
        _timeline(events)
        _steer(c, name, state)


def _over_time(c: Any, name: str, state: dict[str, Any]) -> None:
    left, right = st.columns([1, 3])
    with left:
        st.subheader("Traffic")
        traffic = pd.Series({f"v{k}": v for k, v in (state["traffic"] or {}).items()}, name="% of requests")
        st.bar_chart(traffic, height=220, y_label="% of requests")
    with right:
        st.subheader("The last hour")
        try:
            stats = sdk.stats(project(), name, since=time.time() - WINDOW_S, bucket_s=60, client=c)
        except Exception as exc:  # a deployment that is not up has no live figures
            st.caption(f"No live figures: {exc}")
            return
        rows = [
            {**point, "version": f"v{version}", "at": pd.to_datetime(point["at"], unit="s", utc=True)}
            for version, figures in stats.items()
            if isinstance(figures, dict) and "series" in figures
            for point in figures["series"]
        ]
        if not rows:
            _example(name, state)
            return
        frame = pd.DataFrame(rows)
        slo = ((state.get("spec") or {}).get("rollout") or {}).get("slo") or {}
        cols = st.columns(2)
        cols[0].altair_chart(
            _line(frame, "p99_ms", "p99 latency (ms), per minute", slo.get("max_p99_ms")),
            use_container_width=True,
        )
        cols[1].altair_chart(
            _line(frame, "error_rate", "error rate, per minute", slo.get("max_error_rate"), percent=True),
            use_container_width=True,
        )
        st.caption("Dashed: the SLO a canary must stay inside (above it, the rollout rolls back).")


def _line(frame: pd.DataFrame, field: str, title: str, limit: float | None, percent: bool = False) -> Any:
    axis = alt.Axis(format="%" if percent else ",.0f", title=None)
    chart = (
        alt.Chart(frame, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("at:T", title=None),
            y=alt.Y(f"{field}:Q", axis=axis),
            color=alt.Color("version:N", title="version"),
            tooltip=["version", "at:T", field, "requests"],
        )
    )
    if limit is not None:
        rule = alt.Chart(pd.DataFrame({field: [limit]})).mark_rule(strokeDash=[6, 4], color="#888")
        chart = chart + rule.encode(y=f"{field}:Q")
    return chart.properties(height=220)


def _example(name: str, state: dict[str, Any]) -> None:
    """No traffic in the last hour: how to send some."""
    st.info("No requests in the last hour. Send one:")
    base, auth = get_settings().dataplane_url, "-H 'Authorization: Bearer $KOSMOS_TOKEN'"
    if (state.get("spec") or {}).get("llm"):
        body = {"model": name, "messages": [{"role": "user", "content": "Hello"}]}
        url = f"{base}/{project()}/openai/v1/chat/completions"
        python = f"# or any OpenAI client with base_url={base}/{project()}/openai/v1"
    else:
        body = {"inputs": [{"<field>": 1.0}]}
        url = f"{base}/{project()}/{name}/predict"
        python = f"# or, in Python:\nimport kosmos\nkosmos.deployments.predict({project()!r}, {name!r}, rows)"
    st.code(
        f"curl {url} {auth} \\\n  -H 'Content-Type: application/json' -d '{json.dumps(body)}'\n\n{python}",
        language="bash",
    )


KIND = {
    "deployment.auto_rollback": "rollback",
    "deployment.rollback": "rollback",
    "deployment.alias_refused": "rollback",
    "deployment.promote": "promote",
    "deployment.switch": "promote",
    "deployment.canary_step": "step",
}


def _timeline(events: list[dict[str, Any]]) -> None:
    st.subheader("Timeline")
    if not events:
        st.caption("No events yet.")
        return
    frame = pd.DataFrame(
        {
            "at": [datetime.fromisoformat(e["at"]) for e in events],
            "event": [e["action"].removeprefix("deployment.").replace("_", " ") for e in events],
            "kind": [KIND.get(e["action"], "change") for e in events],
            "who": [e["actor"] for e in events],
            "details": [readable(e["details"]) for e in events],
        }
    )
    colors = alt.Scale(
        domain=["rollback", "promote", "step", "change"], range=["#d97706", "#15803d", "#2563eb", "#6b7280"]
    )
    chart = (
        alt.Chart(frame, title="Rollout events (hover for who and why)")
        .mark_circle(size=120)
        .encode(
            x=alt.X("at:T", title=None),
            y=alt.Y("event:N", title=None),
            color=alt.Color("kind:N", scale=colors, title=None),
            tooltip=["at:T", "event", "who", "details"],
        )
        .properties(height=40 + 28 * frame["event"].nunique())
    )
    st.altair_chart(chart, use_container_width=True)
    with st.expander(f"All {len(frame)} events"):
        table(frame.assign(at=frame["at"].dt.strftime("%Y-%m-%d %H:%M:%S")))


def _steer(c: Any, name: str, state: dict[str, Any]) -> None:
    st.subheader("Steer the rollout")
    reason = st.text_input("Reason (kept in the audit log)", key=f"reason-{name}").strip()
    cols = st.columns(2)
    no_candidate = state["candidate_version"] is None
    why = "No candidate to promote." if no_candidate else None
    steer = None
    if cols[0].button("Promote the candidate", **needs(Role.developer, disabled=no_candidate, why=why)):
        steer = ("Promoting ...", sdk.promote, "Promoted.")
    if cols[1].button("Roll back", **needs(Role.developer)):
        steer = ("Rolling back ...", sdk.rollback, "Rolled back.")
    if steer and not reason:
        st.error("Give a reason: it is kept in the audit log.")
    elif steer:
        label, action, done = steer
        act(label, lambda: action(project(), name, reason=reason, client=c), done)
