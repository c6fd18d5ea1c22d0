"""Sign-in that survives a reload, a new tab and a deep link, without the token leaving the server.

The browser keeps only ``kosmos_session``: a random id (256 bits) in a ``SameSite=Strict`` cookie.
This UI process maps the id's hash to the signed-in token and the last project, in memory, until
the session has been idle for ``IDLE_S``. Signing out ends it; a UI restart, an expired session or
a token revoked since asks for the token again (the token is checked on every resume).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

import streamlit as st

COOKIE = "kosmos_session"
IDLE_S = 12 * 3600
"""A session unused this long is forgotten."""


@dataclass
class UISession:
    token: str
    project: str | None
    seen: float


_lock = threading.Lock()
_sessions: dict[str, UISession] = {}


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(token: str) -> str:
    """A new session for ``token``; returns its id (for the cookie, never logged)."""
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    with _lock:
        for key in [k for k, s in _sessions.items() if now - s.seen > IDLE_S]:
            del _sessions[key]
        _sessions[_key(session_id)] = UISession(token, None, now)
    return session_id


def resume(session_id: str | None) -> UISession | None:
    """The live session of ``session_id`` (its idle clock restarted), or None."""
    if not session_id:
        return None
    with _lock:
        found = _sessions.get(_key(session_id))
        if found is None or time.time() - found.seen > IDLE_S:
            _sessions.pop(_key(session_id), None)
            return None
        found.seen = time.time()
        return found


def end(session_id: str | None) -> None:
    """Forget ``session_id``'s session (sign-out)."""
    if session_id:
        with _lock:
            _sessions.pop(_key(session_id), None)


def set_cookie(session_id: str) -> None:
    """Have the browser keep ``session_id`` (path /, same site only, for ``IDLE_S``)."""
    value = f"{session_id}; Max-Age={IDLE_S}"
    secure = "; Secure" if str(st.context.url or "").startswith("https:") else ""
    st.sidebar.html(
        f'<script>document.cookie = "{COOKIE}={value}; Path=/; SameSite=Strict{secure}";</script>',
        unsafe_allow_javascript=True,
    )
