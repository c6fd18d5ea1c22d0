"""The Kosmos web UI shell: sign in with a token, see your projects.

It talks to the platform through the SDK only; later pages (datasets,
experiments, models, deployments, prompts, the assistant) plug in beside it.
"""

from __future__ import annotations

import streamlit as st

from kosmos.platform import KosmosClient, KosmosError, get_settings


def _client() -> KosmosClient | None:
    token = st.session_state.get("token")
    return KosmosClient(token=token) if token else None


def _sign_in() -> None:
    st.title("Kosmos")
    st.caption("The ML and GenAI platform. Sign in with an API token (`kosmos tokens create`).")
    with st.form("sign-in"):
        token = st.text_input("API token", type="password")
        if st.form_submit_button("Sign in") and token:
            try:
                with KosmosClient(token=token) as client:
                    st.session_state["me"] = client.get("/whoami")
                st.session_state["token"] = token
                st.rerun()
            except KosmosError as exc:
                st.error(f"Sign-in failed: {exc.message}")


def _home(client: KosmosClient) -> None:
    me = st.session_state["me"]
    st.sidebar.write(f"Signed in as **{me['user']}**")
    if st.sidebar.button("Sign out"):
        st.session_state.clear()
        st.rerun()
    st.title("Projects")
    try:
        projects = client.get("/projects")
    except KosmosError as exc:
        st.error(exc.message)
        return
    if not projects:
        st.info("No projects yet. Ask a team admin: `kosmos projects create NAME --team TEAM`.")
        return
    st.dataframe(
        [{k: p[k] for k in ("name", "team", "role", "description")} for p in projects],
        use_container_width=True,
        hide_index=True,
    )
    settings = get_settings()
    st.markdown(f"[MLflow]({settings.mlflow_tracking_uri}) · [API docs]({client.url}/docs)")


def main() -> None:
    st.set_page_config(page_title="Kosmos", layout="wide")
    client = _client()
    if client is None:
        _sign_in()
    else:
        with client:
            _home(client)


main()
