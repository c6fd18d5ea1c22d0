"""Prompt rendering and references, and the vector-index contract (run against every backend)."""

from __future__ import annotations

import numpy as np
import pytest

from kosmos.genai.prompts import parse_reference, render, variables_of
from kosmos.genai.vector_index import INDEXES, index_class
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


@pytest.fixture(params=sorted(INDEXES))
def make_index(request):
    stored: dict[int, tuple[list[int], np.ndarray]] = {}

    def make():
        return index_class(request.param)(lambda ns: stored.get(ns, ([], np.zeros((0, 384)))), 384), stored

    return make


def test_index_contract_add_search_remove_drop_and_reload(make_index) -> None:
    rng = np.random.default_rng(1)
    index, stored = make_index()
    vectors = _unit(rng, 50)
    index.add(1, list(range(100, 150)), vectors)
    index.add(2, [7], vectors[:1])
    assert index.size(1) == 50 and index.size(2) == 1
    top = index.search(1, vectors[3], 3)
    assert top[0][0] == 103 and top[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    index.remove(1, [103, 999])
    assert 103 not in {i for i, _ in index.search(1, vectors[3], 5)} and index.size(1) == 49
    assert index.search(2, vectors[3], 5) == [(7, pytest.approx(float(vectors[0] @ vectors[3]), abs=1e-5))]
    index.drop(1)
    stored[1] = ([1, 2], vectors[:2])  # what the database holds: a dropped namespace reloads from it
    assert {i for i, _ in index.search(1, vectors[1], 5)} == {1, 2}
    with pytest.raises(ValueError, match="384"):
        index.add(3, [1], np.zeros(10, dtype=np.float32))


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
