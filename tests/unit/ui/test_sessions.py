"""The web UI's sign-in sessions: a reload finds the token, the cookie never holds it, and a
session ends on sign-out or after its idle time."""

from __future__ import annotations

import time

from kosmos.ui import sessions


def test_a_session_id_finds_its_token_and_is_not_the_token() -> None:
    session_id = sessions.start("kos_secret-token")
    assert "secret" not in session_id and len(session_id) >= 43  # 256 random bits
    found = sessions.resume(session_id)
    assert found is not None and found.token == "kos_secret-token"
    assert sessions.resume(session_id + "x") is None
    assert sessions.resume(None) is None and sessions.resume("") is None
    # the store is keyed by the id's hash: a dump of it gives no usable cookie
    assert session_id not in sessions._sessions


def test_sign_out_and_idle_time_end_a_session(monkeypatch) -> None:
    ended, idle = sessions.start("t1"), sessions.start("t2")
    sessions.end(ended)
    assert sessions.resume(ended) is None
    now = time.time()
    monkeypatch.setattr(sessions.time, "time", lambda: now + sessions.IDLE_S - 60)
    assert sessions.resume(idle) is not None  # used: its idle clock restarts
    monkeypatch.setattr(sessions.time, "time", lambda: now + 2 * sessions.IDLE_S)
    assert sessions.resume(idle) is None
