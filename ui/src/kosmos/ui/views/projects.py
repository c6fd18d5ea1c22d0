"""Home: your projects, the cluster, and where the other tools are."""

from __future__ import annotations

import streamlit as st

from kosmos.ui.common import api_url, client, page, table


@page
def render() -> None:
    st.title("Projects")
    with client() as c:
        projects = c.get("/projects")
        cluster = None
        try:
            cluster = c.get("/cluster")
        except Exception as exc:  # the cluster view is a nicety; the page works without it
            st.caption(f"Ray cluster: unavailable ({exc})")
    if not projects:
        st.info("No projects yet. Ask a team admin: `kosmos projects create NAME --team TEAM`.")
    else:
        table([{k: p.get(k) for k in ("name", "team", "role", "description")} for p in projects])
    if cluster:
        st.subheader("Ray cluster")
        cols = st.columns(3)
        cols[0].metric("Status", cluster["status"])
        cols[1].metric("Nodes alive", cluster["alive_nodes"])
        cols[2].metric("CPUs", f"{cluster['cpus']:g}")
        if cluster["status"] != "healthy":
            st.warning(cluster["reason"])
    st.markdown(f"[REST API docs]({api_url()}/docs)")
