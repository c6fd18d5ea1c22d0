"""The assistant's doc retrieval: does the right page come back for a question?

    .venv/bin/python bench/assistant_retrieval.py

``bench/data/assistant_questions.tsv`` holds 39 questions a user would ask, each with the
docs page that answers it (written for this benchmark by reading the docs). Every section
of ``docs/`` is embedded with all-minilm-l6-v2 (the gateway's local encoder). Rankings:
cosine similarity (what the assistant does; the reference), shared rare words alone (a
keyword search), and cosine plus a bonus for shared rare words at several weights (tried,
and left out of the assistant: it gained nothing here). Reported: the share of questions
whose page is the first passage (hit@1) or among the three the model reads (hit@3), and
the time to embed the docs and to search.
"""

from __future__ import annotations

import csv
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from kosmos.genai.assistant.docs_index import DocsIndex, default_docs_dir
from kosmos.genai.embeddings import local_encoder

ROOT = Path(__file__).resolve().parent
STOPWORDS = "the a an and or of to in on for with how do i can is are what which my me it this that be by"
COMMON = set(STOPWORDS.split(" "))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9][a-z0-9_\-]+", text.lower()) if w not in COMMON}


def main() -> None:
    with (ROOT / "data" / "assistant_questions.tsv").open() as f:
        labelled = [(r["question"], r["expected"]) for r in csv.DictReader(f, delimiter="\t")]
    encoder = local_encoder(Path(tempfile.gettempdir()) / "kosmos-bench-embeddings")
    encoder(["warm up"])
    started = time.perf_counter()
    index = DocsIndex(default_docs_dir(), encoder)
    build_s = time.perf_counter() - started

    section_words = [_words(f"{p.title} {p.text}") for p in index.passages]
    modes = {"cosine": 0.0, "words": None, "cos+0.1w": 0.1, "cos+0.25w": 0.25, "cos+0.5w": 0.5}

    def rank(question: str, mode: str) -> list[str]:
        query = np.asarray(encoder([question]), dtype=np.float32)[0]
        words = _words(question)
        cosine = index._vectors @ query
        overlap = np.array([len(words & w) / max(len(words), 1) for w in section_words], dtype=np.float32)
        weight = modes[mode]
        scores = overlap + 1e-6 * cosine if weight is None else cosine + weight * overlap
        return [index.passages[i].path for i in np.argsort(-scores)[:3]]

    rows = []
    for mode in modes:
        ranked = [(rank(q, mode), expected) for q, expected in labelled]
        rows.append(
            (
                mode,
                sum(r[0] == e for r, e in ranked) / len(ranked),
                sum(e in r for r, e in ranked) / len(ranked),
            )
        )
    timings = []
    for question, _ in labelled:
        t = time.perf_counter()
        index.search(question, 3)
        timings.append((time.perf_counter() - t) * 1000)
    reference = rows[0]
    print(f"docs: {len(index.passages)} sections, embedded in {build_s:.1f} s; {len(labelled)} questions")
    print(f"{'ranking':<10} {'hit@1':>7} {'hit@3':>7} {'hit@3 vs cosine':>16}")
    for mode, at1, at3 in rows:
        print(f"{mode:<10} {at1:>7.1%} {at3:>7.1%} {at3 / reference[2]:>15.2f}x")
    p50, p99 = statistics.median(timings), float(np.percentile(timings, 99))
    print(f"search (embed the question + rank): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    misses = [(q, e, rank(q, "cosine")) for q, e in labelled if e not in rank(q, "cosine")]
    for question, expected, got in misses:
        print(f"  miss: {question!r} wants {expected}, got {got}")


if __name__ == "__main__":
    main()
