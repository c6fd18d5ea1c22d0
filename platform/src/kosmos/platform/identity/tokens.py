"""API token secrets: random, shown once, stored as SHA-256.

Tokens carry 256 bits of randomness, so a fast hash is enough (no password
stretching needed) and lets the server look a token up by its hash.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "kos_"


def new_token() -> str:
    """A fresh secret, e.g. ``kos_3q9...``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """The part of a token that may be shown in lists and logs."""
    return token[: len(TOKEN_PREFIX) + 6]
