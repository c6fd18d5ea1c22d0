"""Cache settings that cannot work are refused with the setting named, before any request."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kosmos.genai.semantic_cache import check_config
from kosmos.genai.verifier import VerifierMissing
from kosmos.genai.verifier.model import Verifier
from kosmos.platform.settings import CacheSettings


def test_an_unknown_index_and_a_pgvector_index_without_postgresql_are_named() -> None:
    with pytest.raises(ValueError, match="unknown vector index 'faiss'; valid: memory, pgvector"):
        check_config(CacheSettings(index="faiss"), "sqlite:///k.db")
    with pytest.raises(ValueError, match=r"set gateway\.cache\.index_url"):
        check_config(CacheSettings(index="pgvector"), "sqlite:///k.db")
    check_config(CacheSettings(index="pgvector"), "postgresql+psycopg://db/kosmos")  # its own database
    own = check_config(CacheSettings(index="pgvector", index_url="postgresql://pg/cache"), "sqlite:///k.db")
    assert own == "postgresql://pg/cache"  # the URL in force: its own, not the metadata database
    check_config(CacheSettings(), "sqlite:///k.db")


def test_a_malformed_verifier_reference_is_a_settings_error_not_a_crash_later() -> None:
    with pytest.raises(ValidationError, match="verifier"):
        CacheSettings(verifier="just-a-name")
    assert CacheSettings(verifier="team-models/cache-verifier@champion").verifier
    with pytest.raises(VerifierMissing, match="project/model@alias"):  # the same, reached in code
        Verifier.load("sqlite:///nowhere.db", "just-a-name", 0.5)
