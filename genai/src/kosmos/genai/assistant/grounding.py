"""Whether a model's answer says only what its facts and sources say, by the numbers and names in it.

The facts are the answer; a small model only words them, and it must not contradict them. An
answer that names a number (a metric, a version, a count) or an identifier (anything in
backticks, a dotted path like ``kosmos.training.x``, a snake_case name) that neither the facts,
the cited sources nor the question hold is withheld, and the facts are shown instead. A number
counts as held when some number there rounds to it (0.876 for 0.8756), also as a percentage
(87.6% for 0.8756).
"""

from __future__ import annotations

import re

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
