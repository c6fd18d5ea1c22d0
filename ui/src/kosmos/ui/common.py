"""What every page shares: the signed-in client, the chosen project, readable errors."""

from __future__ import annotations

import functools
import logging
import math
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
    """A full-width table without the index; nested values read as text, never raw JSON."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(lambda v: isinstance(v, dict | list)).any():
            frame[column] = frame[column].map(readable)
    st.dataframe(frame, use_container_width=True, hide_index=True, **kwargs)


def readable(value: Any) -> str:
    """A nested value as a person reads it: ``champion: 1 · challenger: 2``, ``a, b``."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return " · ".join(f"{k}: {readable(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(readable(v) for v in value)
    if isinstance(value, float):
        return str(rounded(value))
    return str(value)


def rounded(value: Any, digits: int = 4) -> Any:
    """A float to ``digits`` significant digits (0.0018079999999827123 -> 0.001808); others as they are."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.{digits}g}")
    return value


def mlflow_url(path: str) -> str | None:
    """``path`` in the MLflow UI (its browser sign-in takes a user name and a token), or None
    when the tracking server is not an HTTP address."""
    base = get_settings().mlflow_tracking_uri.rstrip("/")
    return f"{base}/{path}" if base.startswith("http") else None


def linked(text: str) -> Any:
    """A table column of links shown as ``text``."""
    return st.column_config.LinkColumn(display_text=text)


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
