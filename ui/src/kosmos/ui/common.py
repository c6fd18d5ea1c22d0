"""What every page shares: the signed-in client, the chosen project, readable errors."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import streamlit as st

from kosmos.platform import KosmosClient, KosmosError, Role, get_settings

log = logging.getLogger("kosmos.ui")


def api_url() -> str:
    """The control plane the UI talks to (settings' client URL, else the local one)."""
    settings = get_settings()
    return st.session_state.get("url") or settings.client.url or settings.api_url


@contextmanager
def client() -> Iterator[KosmosClient]:
    """The SDK client with the signed-in user's token (the only way the UI reads anything)."""
    with KosmosClient(url=api_url(), token=st.session_state["token"]) as c:
        yield c


def project() -> str:
    """The project picked in the sidebar."""
    return st.session_state["project"]


def role() -> Role | None:
    """The signed-in token's effective role on the chosen project (membership, capped by the
    token's own limit), as the API reports it; None for no access."""
    roles = st.session_state.get("roles")
    if roles is None or project() not in roles:
        with client() as c:
            roles = {p["name"]: p["role"] for p in c.get("/projects")}
        st.session_state["roles"] = roles
    name = roles.get(project())
    return Role.parse(name) if name else None


def needs(required: Role, *, disabled: bool = False, why: str | None = None) -> dict[str, Any]:
    """A button's ``disabled`` and ``help`` for an action the API allows from ``required`` up:
    disabled, saying the role it needs, for a role below it (the API would refuse the click;
    this says so before it). ``disabled``/``why``: the button's own reason to be off, kept."""
    mine = role()
    if mine is not None and mine >= required:
        return {"disabled": disabled, "help": why}
    have = f"you are {mine.name}" if mine else "you are not a member"
    return {"disabled": True, "help": f"Needs the {required.name} role on {project()}; {have}."}


def page(fn: Callable[[], None]) -> Callable[[], None]:
    """A page body whose errors become one readable message, never a stack trace."""

    @functools.wraps(fn)
    def render() -> None:
        flash = st.session_state.pop("flash", None)
        if flash:  # what the last action did, shown on the refreshed page
            st.success(flash)
        try:
            fn()
        except KosmosError as exc:
            st.error(f"{exc.message}")
        except Exception as exc:  # the UI must stay up; the details go to the log
            log.exception("page %s failed", fn.__name__)
            st.error(f"Something went wrong ({type(exc).__name__}): {exc}")

    return render


def table(rows: list[dict[str, Any]] | pd.DataFrame, **kwargs: Any) -> None:
    """A full-width table without the index; nested values (dicts, lists) shown as JSON text."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(lambda v: isinstance(v, dict | list)).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v, default=str) if v is not None else "")
    st.dataframe(frame, use_container_width=True, hide_index=True, **kwargs)


def act(label: str, fn: Callable[[], Any], success: str | Callable[[Any], str]) -> None:
    """Run a change with a spinner. Refused: say why. Done: reload the page (its tables show
    the new state) with what happened on top."""
    try:
        with st.spinner(label):
            result = fn()
    except KosmosError as exc:
        st.error(exc.message)
        return
    st.session_state["flash"] = success(result) if callable(success) else success
    st.rerun()
