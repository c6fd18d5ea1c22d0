"""The UI's frame: sign in with a token, pick a project, and the pages."""

from __future__ import annotations

import streamlit as st

from kosmos.platform import KosmosClient, KosmosError
from kosmos.ui import sessions
from kosmos.ui.common import api_url
from kosmos.ui.views import (
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


def sign_in() -> bool:
    """The sign-in form until a token is accepted; True once it is (the page goes on in this run)."""
    form = st.empty()
    with form.container():
        st.title("Kosmos")
        st.caption("The ML and GenAI platform. Sign in with an API token (`kosmos tokens create`).")
        with st.form("sign-in"):
            token = st.text_input("API token", type="password")
            if not (st.form_submit_button("Sign in") and token and _signed_in(token)):
                return False
    form.empty()
    session_id = sessions.start(token)
    st.session_state["session_id"] = session_id
    sessions.set_cookie(session_id)
    return True


def _signed_in(token: str, *, quiet: bool = False) -> bool:
    """Check ``token`` with the API and keep who it is and what it may see."""
    try:
        with KosmosClient(url=api_url(), token=token) as client:
            me = client.get("/whoami")
            projects = client.get("/projects")
    except KosmosError as exc:
        if not quiet:
            st.error(f"Sign-in failed: {exc.message}")
        return False
    st.session_state.update(
        token=token,
        me=me,
        projects=[p["name"] for p in projects],
        roles={p["name"]: p["role"] for p in projects},
    )
    return True


def _resume() -> bool:
    """Signed in already in this browser (a reload, a new tab, a link): the cookie's session."""
    session_id = st.context.cookies.get(sessions.COOKIE)
    found = sessions.resume(session_id)
    if found is None or not _signed_in(found.token, quiet=True):
        return False
    st.session_state["session_id"] = session_id
    if found.project and "project" not in st.session_state:
        st.session_state["project"] = found.project
    return True


def sidebar() -> bool:
    """Who is signed in with which role, the project picker and sign-out; False without a project."""
    me = st.session_state["me"]
    names = st.session_state.get("projects") or []
    if not names:
        st.sidebar.markdown(f"Signed in as **{me['user']}**")
        st.sidebar.info("You have no projects yet.")
        return False
    linked = st.query_params.get("project")
    current = linked if linked in names else st.session_state.get("project")
    chosen = st.sidebar.selectbox("Project", names, index=names.index(current) if current in names else 0)
    st.session_state["project"] = chosen
    st.query_params["project"] = chosen  # the address is a link to this page of this project
    found = sessions.resume(st.session_state.get("session_id"))
    if found is not None:
        found.project = chosen  # the next visit starts here
    role = st.session_state["roles"].get(chosen) or "no role"
    capped = f" (token limited to {me['token_role']})" if me.get("token_role") else ""
    st.sidebar.markdown(f"Signed in as **{me['user']}**, **{role}** on {chosen}{capped}")
    if st.sidebar.button("Sign out"):
        sessions.end(st.session_state.get("session_id"))  # the cookie now names nothing
        st.session_state.clear()
        st.rerun()
    return True


def _blank() -> None:
    """A page's stand-in before sign-in: the form above it is all there is."""


def main() -> None:
    st.set_page_config(page_title="Kosmos", page_icon=":material/public:", layout="wide")
    if "token" not in st.session_state and not _resume() and not sign_in():
        # the pages' addresses stay known while the form shows: a link (/models?project=demo)
        # opens that page once signed in, and Streamlit does not list the pages/ folder's files
        every = [(title, path) for entries in PAGES.values() for _, title, path, _ in entries]
        pages = [st.Page(_blank, title=t, url_path=p, default=p == "projects") for t, p in every]
        st.navigation(pages, position="hidden")
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
