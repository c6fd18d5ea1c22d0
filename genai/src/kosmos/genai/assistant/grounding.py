"""Whether a model's answer says only what its facts and sources say, by the numbers and names in it.

The facts are the answer; a small model only words them, and it must not contradict them. An
answer that names a number (a metric, a version, a count) or an identifier (anything in
backticks, a dotted path like ``kosmos.training.x``, a snake_case name) that neither the facts,
the cited sources nor the question hold is withheld, and the facts are shown instead. A number
counts as held when some number there rounds to it (0.876 for 0.8756), also as a percentage
(87.6% or 88% for 0.8756); a whole number only as itself ("1" is not 0.8756).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

_CITATION = re.compile(r"\[\d+\]")
_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(%?)(?!\w)|\bv(\d+)\b")
_NAME = re.compile(r"`([^`\n]{2,120})`|\b([A-Za-z_]\w*(?:\.\w+){2,}|[A-Za-z][A-Za-z0-9]*_\w+)\b")


def _numbers(text: str) -> list[float]:
    found = []
    for number, _, version in _NUMBER.findall(text):
        raw = (number or version).replace(",", "")
        try:
            found.append(float(raw))
        except ValueError:
            continue
    return found


def _held(token: str, percent: bool, known: list[float]) -> bool:
    value = float(token.replace(",", ""))
    decimals = len(token.split(".")[1]) if "." in token else 0
    for number in known:
        if decimals == 0 and not percent and number != int(number):
            continue  # "1" is not 0.8742 rounded: a whole number must be one
        if round(number, decimals) == value:
            return True
        if percent and round(number * 100, decimals) == value:
            return True
    return False


def ungrounded(answer: str, evidence: str) -> list[str]:
    """What ``answer`` names that ``evidence`` (the facts, sources and question) does not hold, in
    order; empty when the answer is grounded."""
    text = _CITATION.sub("", answer)
    known = _numbers(evidence)
    missing: list[str] = []
    for number, percent, version in _NUMBER.findall(text):
        token = number or version
        try:
            held = _held(token, bool(percent), known)
        except ValueError:  # "1,2,3" and the like: not one number
            continue
        if not held:
            missing.append(f"v{token}" if version else token + percent)
    lowered = evidence.lower()
    for quoted, bare in _NAME.findall(text):
        name = (quoted or bare).strip()
        if name.lower() not in lowered:
            missing.append(name)
    return list(dict.fromkeys(missing))


STATES = ("healthy", "degraded", "unstable", "failed", "failing", "deploying", "unhealthy", "down", "broken")
"""What a deployment can be said to be; an answer may only give the states its facts give."""
_NEGATION = re.compile(r"\b(?:not|no|never|isn't|aren't|wasn't|n't)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z][\w-]*")


def degenerate(answer: str) -> str | None:
    """Why ``answer`` is a small model's loop rather than an answer (a sentence said twice, a word
    four times running), or None."""
    seen: set[str] = set()
    for sentence in _SENTENCE.split(answer):
        key = " ".join(_WORD.findall(sentence.lower()))
        if len(key) > 12 and key in seen:
            return f"it repeats itself ({sentence.strip()[:60]!r})"
        seen.add(key)
    words = re.findall(r"[a-z]+", answer.lower())
    for i in range(len(words) - 3):
        if len(set(words[i : i + 4])) == 1:
            return f"it repeats {words[i]!r}"
    return None


def _rows(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for fact in facts for row in fact.get("data") or [] if isinstance(row, dict)]


def contradicted(answer: str, facts: list[dict[str, Any]]) -> list[str]:
    """States ``answer`` gives that the facts do not: a state no row has ("degraded" when all are
    healthy; "none is degraded" agrees), a named row in another state than its own, or its own
    state negated ("is not healthy")."""
    rows = [r for r in _rows(facts) if isinstance(r.get("status"), str) and isinstance(r.get("name"), str)]
    if not rows:
        return []
    held = {r["status"].lower() for r in rows}
    wrong: list[str] = []
    for sentence in _SENTENCE.split(answer):
        lowered = sentence.lower()
        said = [s for s in STATES if re.search(rf"\b{s}\b", lowered)]
        negated = bool(_NEGATION.search(lowered))
        wrong += [s for s in said if s not in held and not negated]  # "none is degraded" agrees
        for row in rows:
            if not re.search(rf"\b{re.escape(row['name'].lower())}\b", lowered):
                continue
            status = row["status"].lower()
            wrong += [f"{row['name']} {s}" for s in said if s != status and s in held]
            if status in said and negated:
                wrong.append(f"{row['name']} not {status}")
    return list(dict.fromkeys(wrong))


def _pairs(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, value) leaf of the facts' rows, nested keys kept by their own name."""
    if isinstance(value, dict):
        return [pair for k, item in value.items() for pair in _pairs(item, str(k))]
    if isinstance(value, list):
        return [pair for item in value for pair in _pairs(item, key)]
    if isinstance(value, bool) or value is None or str(value).strip() == "":
        return []
    return [(key, str(value).strip())]


def _squashed(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def restates(answer: str, facts: list[dict[str, Any]], question: str) -> bool:
    """Whether ``answer`` gives a value of the facts' rows that the question did not hold (a number
    also rounded or as a percentage); when the question names a field ("ROC-AUC" for ``roc_auc``,
    "rows"), a value of that field. A lookup's answer that gives none of its results ("the ROC-AUC
    is the Receirawa model") answers nothing. True when there are no rows."""
    pairs = _pairs(_rows(facts))
    if not pairs:
        return True
    asked = question.lower()
    named = [(k, v) for k, v in pairs if len(_squashed(k)) >= 4 and _squashed(k) in _squashed(question)]
    text, words = answer.lower(), set(_WORD.findall(answer.lower()))
    numbers = _NUMBER.findall(_CITATION.sub("", answer))
    for _, value in named or pairs:
        low = value.lower()
        if low in asked and not named:
            continue
        try:
            known = [float(value)]
        except ValueError:
            if low in words or (len(low) > 3 and low in text):
                return True
            continue
        for number, percent, version in numbers:
            with contextlib.suppress(ValueError):
                if _held(number or version, bool(percent), known):
                    return True
    return False
