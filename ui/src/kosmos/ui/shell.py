"""The UI's frame: sign in with a token, pick a project, and the pages."""

from __future__ import annotations

import streamlit as st

from kosmos.platform import KosmosClient, KosmosError
from kosmos.ui.common import api_url
from kosmos.ui.pages import (
    assistant,
    audit,
    cache,
    datasets,
    decisions,
    deployments,
    experiments,
    features,
    models,
    playground,
    projects,
    prompts,
)

PAGES = {
    "Platform": [
        (projects.render, "Projects", "projects", ":material/home:"),
        (audit.render, "Audit log", "audit", ":material/history:"),
    ],
    "ML": [
        (datasets.render, "Datasets", "datasets", ":material/dataset:"),
        (features.render, "Features", "features", ":material/table_chart:"),
        (experiments.render, "Experiments", "experiments", ":material/science:"),
        (models.render, "Models", "models", ":material/inventory_2:"),
        (deployments.render, "Deployments", "deployments", ":material/rocket_launch:"),
        (decisions.render, "Decisions", "decisions", ":material/manage_search:"),
    ],
    "GenAI": [
        (prompts.render, "Prompts", "prompts", ":material/edit_note:"),
        (playground.render, "LLM playground", "playground", ":material/chat:"),
        (cache.render, "Cache", "cache", ":material/bolt:"),
        (assistant.render, "Assistant", "assistant", ":material/smart_toy:"),
    ],
}


def sign_in() -> None:
    st.title("Kosmos")
    st.caption("The ML and GenAI platform. Sign in with an API token (`kosmos tokens create`).")
    with st.form("sign-in"):
        token = st.text_input("API token", type="password")
        if st.form_submit_button("Sign in") and token:
            try:
                with KosmosClient(url=api_url(), token=token) as client:
                    me = client.get("/whoami")
                    projects = client.get("/projects")
            except KosmosError as exc:
                st.error(f"Sign-in failed: {exc.message}")
                return
            st.session_state.update(token=token, me=me, projects=[p["name"] for p in projects])
            st.rerun()


def sidebar() -> bool:
    """Who is signed in, the project picker and sign-out; False when there is no project."""
    me = st.session_state["me"]
    st.sidebar.markdown(f"Signed in as **{me['user']}**")
    names = st.session_state.get("projects") or []
    if not names:
        st.sidebar.info("You have no projects yet.")
        return False
    current = st.session_state.get("project")
    st.session_state["project"] = st.sidebar.selectbox(
        "Project", names, index=names.index(current) if current in names else 0
    )
    if st.sidebar.button("Sign out"):
        st.session_state.clear()
        st.rerun()
    return True


def main() -> None:
    st.set_page_config(page_title="Kosmos", page_icon=":material/public:", layout="wide")
    if "token" not in st.session_state:
        sign_in()
        return
    has_project = sidebar()
    pages = {
        section: [
            st.Page(fn, title=title, url_path=path, icon=icon, default=path == "projects")
            for fn, title, path, icon in entries
            if has_project or path == "projects"
        ]
        for section, entries in PAGES.items()
    }
    st.navigation({k: v for k, v in pages.items() if v}).run()
