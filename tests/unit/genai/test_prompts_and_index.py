"""Prompt rendering and references, and the embedded vector index's partitioned search (the contract
every backend meets is in tests/integration/genai/test_vector_index.py)."""

from __future__ import annotations

import numpy as np
import pytest

from kosmos.genai.prompts import parse_reference, render, variables_of
from kosmos.genai.vector_index import memory as memory_index
from kosmos.platform.errors import InvalidInput


def test_render_fills_every_variable_and_refuses_missing_or_extra() -> None:
    template = "Answer {{ question }} for {{customer}}."
    assert variables_of(template) == {"question", "customer"}
    assert render(template, {"question": "Q", "customer": "C"}) == "Answer Q for C."
    with pytest.raises(InvalidInput, match="missing variables: customer"):
        render(template, {"question": "Q"})
    with pytest.raises(InvalidInput, match="unknown variables: tone"):
        render(template, {"question": "Q", "customer": "C", "tone": "x"})
    chat = [{"role": "system", "content": "You help {{team}}."}, {"role": "user", "content": "{{q}}"}]
    assert render(chat, {"team": "risk", "q": "hi"})[0]["content"] == "You help risk."


def test_prompt_references() -> None:
    assert parse_reference("prompts:/support@production") == ("support", "production", None)
    assert parse_reference("prompts:/support/3") == ("support", None, 3)
    assert parse_reference("support") == ("support", None, None)
    with pytest.raises(InvalidInput, match="bad prompt reference"):
        parse_reference("prompts:/../other-project.secret@x")


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_memory_index_partitions_large_namespaces_and_still_finds_neighbours(monkeypatch) -> None:
    monkeypatch.setattr(memory_index, "EXACT_UP_TO", 500)
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 3000)
    index = memory_index.MemoryIndex(lambda ns: ([], np.zeros((0, 384))), 384)
    index.add(1, list(range(3000)), vectors)
    noisy = vectors[:200] + 0.02 * rng.standard_normal((200, 384)).astype(np.float32)
    found = sum(index.search(1, q / np.linalg.norm(q), 1)[0][0] == i for i, q in enumerate(noisy))
    assert found >= 190  # near-duplicates are found through the partition
    assert index._spaces[1].centroids is not None  # it really used the IVF path
    index.remove(1, list(range(0, 3000, 2)))
    assert all(i % 2 == 1 for i, _ in index.search(1, vectors[1], 10))
