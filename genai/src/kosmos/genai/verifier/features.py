"""What the cache verifier looks at for a pair of questions (cached ``a``, new ``b``).

Two kinds of features, both cheap once the two embeddings exist (the cache has them already):

- the embeddings' cosine;
- word-level checks the embeddings cannot see: whether numbers, negation or named entities
  differ (the rules of ``cache_guard``), the overlap of content words, words found in only one
  question, and whether the shared words appear in another order (swapped roles: "from A to B"
  and "from B to A" embed almost identically).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from kosmos.genai.cache_guard import meaning_differs

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "my",
        "me",
        "we",
        "our",
        "you",
        "your",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "from",
        "with",
        "by",
        "as",
        "and",
        "or",
        "if",
        "how",
        "what",
        "why",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "it",
        "its",
        "this",
        "that",
        "there",
        "their",
        "them",
        "they",
        "he",
        "she",
        "his",
        "her",
        "please",
        "tell",
        "way",
        "steps",
        "need",
        "want",
        "like",
        "get",
        "so",
        "about",
        "into",
    ]
)
_NEGATION = frozenset({"not", "no", "never", "without", "cannot", "can't", "don't", "doesn't", "isn't",
                       "won't", "didn't", "aren't", "wasn't", "shouldn't", "couldn't", "nor"})  # fmt: skip
LEXICAL = ("guard", "numbers", "negation", "entities", "jaccard", "only_a", "only_b", "reordered", "length")
COLUMNS = ["cosine", *LEXICAL]
"""A verifier's inputs, in order. (The embeddings' product and difference, the usual pair features,
were tried and left out: fitted on template questions they learned the templates and refused real
paraphrases; bench/RESULTS.md.)"""


def _content(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return [w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words if w not in _STOP]


def _reordered(a: list[str], b: list[str]) -> float:
    """Share of shared-word pairs whose order differs (0: same order; 1: fully reversed)."""
    shared = [w for w in dict.fromkeys(a) if w in b and a.count(w) == 1 and b.count(w) == 1]
    if len(shared) < 2:
        return 0.0
    position = {w: b.index(w) for w in shared}
    pairs = inverted = 0
    for i in range(len(shared)):
        for j in range(i + 1, len(shared)):
            pairs += 1
            inverted += position[shared[i]] > position[shared[j]]
    return inverted / pairs


def lexical(a: str, b: str) -> list[float]:
    """The word-level features of one pair, in ``LEXICAL`` order."""
    why = meaning_differs(b, a) or ""
    ca, cb = _content(a), _content(b)
    sa, sb = set(ca), set(cb)
    union = sa | sb
    negation = (sum(w in _NEGATION for w in _WORD.findall(a.lower())) % 2) != (
        sum(w in _NEGATION for w in _WORD.findall(b.lower())) % 2
    )
    return [
        float(bool(why)),
        float("number" in why),
        float(negation or "negation" in why),
        float("entit" in why),
        len(sa & sb) / len(union) if union else 1.0,
        float(len(sa - sb)),
        float(len(sb - sa)),
        _reordered(ca, cb),
        abs(len(ca) - len(cb)) / max(len(ca), len(cb), 1),
    ]


def pair_features(
    a_texts: list[str], b_texts: list[str], a_vectors: np.ndarray, b_vectors: np.ndarray
) -> np.ndarray:
    """One row per pair, in ``COLUMNS`` order: the embeddings' cosine, then the lexical features."""
    a_vectors, b_vectors = np.atleast_2d(a_vectors), np.atleast_2d(b_vectors)
    cosine = (a_vectors * b_vectors).sum(axis=1, keepdims=True)
    words = np.array([lexical(a, b) for a, b in zip(a_texts, b_texts, strict=True)], dtype=np.float32)
    return np.hstack([cosine, words]).astype(np.float32).astype(np.float64)


def feature_frame(
    a_texts: list[str], b_texts: list[str], a_vectors: np.ndarray, b_vectors: np.ndarray
) -> pd.DataFrame:
    """``pair_features`` as the frame a registered model was fitted on (named columns)."""
    return pd.DataFrame(pair_features(a_texts, b_texts, a_vectors, b_vectors), columns=COLUMNS)
