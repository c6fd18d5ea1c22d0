"""The audit log: who did what, when, and why."""

from __future__ import annotations

import streamlit as st

from kosmos.ui.common import client, page, project, table


@page
def render() -> None:
    st.title("Audit log")
    cols = st.columns(3)
    action = cols[0].text_input("Action", placeholder="e.g. model.promote")
    actor = cols[1].text_input("Actor")
    limit = cols[2].number_input("Rows", 10, 1000, 200)
    with client() as c:
        events = c.get(
            "/audit", project=project(), action=action or None, actor=actor or None, limit=int(limit)
        )
    if not events:
        st.info("No events match.")
        return
    table(
        [
            {
                "at": (e.get("at") or e.get("created_at") or "")[:19],
                "actor": e.get("actor"),
                "action": e.get("action"),
                "object": f"{e.get('object_type', '')} {e.get('object_name', '')}".strip(),
                "details": e.get("details"),
            }
            for e in events
        ]
    )
