"""The assistant's docs index and tool choice, without a platform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kosmos.genai.assistant import tools
from kosmos.genai.assistant.docs_index import DocsIndex, chunk, default_docs_dir, slug

PAGE = """# Deploying models

Intro text.

## Roll out a new version

Canary steps 5, 25, 100.

```bash
# not a heading: a shell comment
kosmos deploy rollout fraud -v 2
```

### Automatic rollback

When the SLO breaks, traffic goes back.
"""


def test_sections_keep_their_heading_trail_and_anchor_and_code_blocks_stay_whole() -> None:
    passages = chunk("docs/deployment.md", PAGE)
    assert [(p.title, p.anchor) for p in passages] == [
        ("Deploying models", ""),
        ("Deploying models > Roll out a new version", "roll-out-a-new-version"),
        ("Deploying models > Roll out a new version > Automatic rollback", "automatic-rollback"),
    ]
    assert "# not a heading: a shell comment" in passages[1].text
    assert passages[1].citation == "docs/deployment.md#roll-out-a-new-version"
    assert slug("`kosmos up` (what `make run` starts)") == "kosmos-up-what-make-run-starts"


def test_long_sections_are_cut_at_paragraphs() -> None:
    body = "\n\n".join(f"Paragraph {i}. " + "word " * 60 for i in range(12))
    passages = chunk("docs/x.md", f"# X\n\n## Long\n\n{body}")
    assert len(passages) > 1 and all(len(p.text) <= 1300 for p in passages)
    assert "".join(p.text for p in passages).count("Paragraph") == 12


def _bag_of_words(texts: list[str]) -> np.ndarray:
    """A stand-in encoder for the ranking logic; the real one runs in the integration tests."""
    vocabulary = ["canary", "rollback", "feature", "token", "cache"]
    vectors = np.array([[t.lower().count(w) + 0.01 for w in vocabulary] for t in texts], dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_search_ranks_the_matching_section_first(tmp_path: Path) -> None:
    (tmp_path / "deployment.md").write_text(PAGE)
    (tmp_path / "tokens.md").write_text("# Tokens\n\n## Create a token\n\nA token is a secret.\n")
    index = DocsIndex(tmp_path, _bag_of_words)
    [(best, score), *_] = index.search("how do I roll back a canary?", k=2)
    assert best.anchor == "roll-out-a-new-version" and score > 0
    with pytest.raises(FileNotFoundError, match="no docs folder"):
        DocsIndex(tmp_path / "missing", _bag_of_words)


def test_the_shipped_docs_are_found_and_cover_the_platform() -> None:
    folder = default_docs_dir()
    assert (folder / "assistant.md").is_file() and (folder / "deployment.md").is_file()


@pytest.mark.parametrize(
    ("question", "picked"),
    [
        ("How do I deploy a model with a canary?", []),
        ("Which deployments of project demo are degraded?", ["deployments"]),
        ("What is the champion model's ROC-AUC?", ["models"]),
        ("Which feature views does this project have?", ["features"]),
        ("list the datasets", ["datasets"]),
        ("What is the weather?", []),
        ("Is anything down in production right now?", ["deployments"]),  # no tool's word in it
        ("How was the model that is live trained?", ["models"]),
    ],
)
def test_tools_are_picked_by_the_questions_meaning(question: str, picked: list[str]) -> None:
    from kosmos.genai.embeddings import local_encoder

    assert [t.name for t in tools.pick(question, local_encoder())] == picked


def test_section_vectors_are_kept_on_disk_and_reused(tmp_path: Path) -> None:
    docs, cache = tmp_path / "docs", tmp_path / "cache"
    docs.mkdir()
    (docs / "deployment.md").write_text(PAGE)
    calls: list[int] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return _bag_of_words(texts)

    first = DocsIndex(docs, counting, cache)
    second = DocsIndex(docs, counting, cache)
    assert calls == [3]  # the second build embeds nothing
    assert len(list(cache.glob("docs-*.npy"))) == 1
    assert np.allclose(first._vectors, second._vectors)
    (docs / "deployment.md").write_text(PAGE + "\n## New section\n\nMore.\n")
    DocsIndex(docs, counting, cache)
    assert calls[-1] == 4 and len(list(cache.glob("docs-*.npy"))) == 2  # changed docs: embedded again


def test_a_follow_up_keeps_the_lookups_of_the_question_before() -> None:
    from kosmos.genai.embeddings import local_encoder

    encode = local_encoder()
    champion = "Which model version is champion for fraud-detector?"
    assert [t.name for t in tools.pick("Is that good?", encode)] == []  # alone: near nothing
    assert [t.name for t in tools.pick("Is that good?", encode, champion)] == ["models"]
    healthy = "Is the scorer deployment healthy?"
    assert [t.name for t in tools.pick("Who changed it last?", encode, healthy)] == ["deployments"]
    # a question of its own is not bent by the one before
    assert [t.name for t in tools.pick("How do I create a token?", encode, champion)] == []
    degraded = "Which deployments are degraded?"
    assert [t.name for t in tools.pick("list the datasets", encode, degraded)] == ["datasets"]


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("Which deployments of project secret are degraded?", "secret"),
        ("Is project `risk-2` healthy?", "risk-2"),
        ("Which feature views does this project define?", None),  # "define" is a verb, not a name
        ("What changed in my project today?", None),
        ("How do I create a project?", None),
    ],
)
def test_a_question_names_another_project_only_by_name(question: str, named: str | None) -> None:
    from kosmos.genai.assistant.service import _named_project

    assert _named_project(question) == named
