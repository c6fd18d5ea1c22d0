"""Name rules and secret redaction."""

from __future__ import annotations

import logging

import pytest

from kosmos.platform.identity.names import name_problem
from kosmos.platform.identity.tokens import hash_token, new_token
from kosmos.platform.logs import RequestContextFilter, redact_secrets


@pytest.mark.parametrize("name", ["demo", "risk-team", "a", "x1_y2", "a" * 128])
def test_good_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a" * 129, "a/b", "a\\b", "a\x00b", "..", "Demo", "-x", "a b"])
def test_bad_names(name: str) -> None:
    assert name_problem(name)


def test_tokens_are_random_and_hash_stably() -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("kos_") and len(a) > 40
    assert hash_token(a) == hash_token(a) != hash_token(b)


def test_secrets_never_reach_a_log_line() -> None:
    token = new_token()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login with %s", (token,), None)
    RequestContextFilter().filter(record)
    assert token not in record.getMessage()
    assert "[REDACTED]" in redact_secrets(f"Authorization: Bearer {token}")
