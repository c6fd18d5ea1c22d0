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


def test_memory_index_bounds_the_rows_it_scores_in_crowded_cells(monkeypatch) -> None:
    """Paraphrases of one question crowd one cell: the search scores the nearest cells first and
    stops near MAX_ROWS, and still finds the near-duplicate."""
    monkeypatch.setattr(memory_index, "EXACT_UP_TO", 500)
    monkeypatch.setattr(memory_index, "MAX_ROWS", 300)
    rng = np.random.default_rng(3)
    centres = _unit(rng, 20)
    crowd = np.repeat(centres, 150, axis=0) + 0.05 * rng.standard_normal((3000, 384)).astype(np.float32)
    crowd /= np.linalg.norm(crowd, axis=1, keepdims=True)
    index = memory_index.MemoryIndex(lambda ns: ([], np.zeros((0, 384))), 384)
    index.add(1, list(range(3000)), crowd)
    space = index._spaces[1]
    index.search(1, crowd[0], 1)  # trains the partition
    assert (
        space.sizes.sum() == 3000
        and (space.sizes == np.bincount(space.cells[:3000], minlength=len(space.sizes))).all()
    )
    scored = len(space.candidates(crowd[7]))
    assert scored <= 300 + space.sizes.max()  # the nearest cell, then only cells that still fit
    assert index.search(1, crowd[7], 1)[0][0] == 7
    index.remove(1, [7, 8])
    index.add(1, [9], crowd[9:10])  # replacing keeps the counts right
    assert (
        space.sizes.sum() == 2998
        and (space.sizes == np.bincount(space.cells[:2998], minlength=len(space.sizes))).all()
    )
