"""The assistant's choice of live lookups: the right tools for a question, or none for a how-to.

    .venv/bin/python bench/assistant_tools.py

``bench/data/assistant_tools_heldout.tsv``: 30 questions labelled with the lookups they need,
written before the classifier and never used to tune it. Compared side by side:
  - keywords: the picker the assistant had before issue 24 (a tool runs when the question uses
    one of its words; a question starting "how do I ..." runs none), kept here as the reference;
  - classifier: ``kosmos.genai.assistant.tools.pick`` (nearest example question by MiniLM
    embedding, the shipped thresholds).
Reported: the share of questions that get exactly the right set, and per tool precision and recall.
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

from kosmos.genai.assistant import tools
from kosmos.genai.embeddings import local_encoder

HERE = Path(__file__).resolve().parent
KEYWORDS = {  # the pre-issue-24 picker's words, verbatim
    "deployments": "deployment deployments deployed degraded healthy failed failing serving traffic "
    "replica replicas endpoint endpoints rollout canary status down",
    "models": "model models champion challenger roc-auc roc auc metric metrics accuracy "
    "registered registry precision recall",
    "features": "feature features view views entity entities",
    "datasets": "dataset datasets data",
}
HOW_TO = re.compile(r"^\s*(how (do|can|should|to)|where (do|can)|can i|what command|explain)\b", re.I)


def by_keywords(question: str) -> set[str]:
    if HOW_TO.match(question):
        return set()
    words = set(re.findall(r"[a-z0-9\-]+", question.lower()))
    return {name for name, kw in KEYWORDS.items() if set(kw.split()) & words}


def main() -> None:
    lines = (HERE / "data" / "assistant_tools_heldout.tsv").read_text().splitlines()
    rows = [
        (r["question"], set() if r["tools"] == "none" else set(r["tools"].split(",")))
        for r in csv.DictReader((line for line in lines if not line.startswith("#")), delimiter="\t")
    ]
    encode = local_encoder()
    tools.pick("warm up", encode)
    started = time.perf_counter()
    picked = {"keywords": [by_keywords(q) for q, _ in rows]}
    picked["classifier"] = [{t.name for t in tools.pick(q, encode)} for q, _ in rows]
    ms = (time.perf_counter() - started) * 1000 / len(rows)
    names = [*KEYWORDS, "none"]
    print(f"{len(rows)} held-out questions; classifier {ms:.1f} ms per question (embedding included)")
    print(f"{'picker':<12} {'exact':>6} " + " ".join(f"{n + ' P/R':>16}" for n in names))
    for method, got in picked.items():
        exact = sum(g == want for g, (_, want) in zip(got, rows, strict=True)) / len(rows)
        cells = []
        for name in names:

            def has(s: set[str], name: str = name) -> bool:
                return (not s) if name == "none" else name in s

            tp = sum(has(g) and has(w) for g, (_, w) in zip(got, rows, strict=True))
            fp = sum(has(g) and not has(w) for g, (_, w) in zip(got, rows, strict=True))
            fn = sum(not has(g) and has(w) for g, (_, w) in zip(got, rows, strict=True))
            cells.append(f"{tp / max(tp + fp, 1):>7.0%}/{tp / max(tp + fn, 1):<7.0%}")
        print(f"{method:<12} {exact:>6.0%} " + " ".join(f"{c:>16}" for c in cells))
    print("\nmisses of the classifier:")
    for (question, want), got in zip(rows, picked["classifier"], strict=True):
        if got != want:
            print(f"  {question!r}: wanted {sorted(want) or 'none'}, got {sorted(got) or 'none'}")


if __name__ == "__main__":
    main()
