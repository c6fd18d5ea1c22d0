"""PII redaction: what the gateway does to a prompt before it reaches a model, the cache or a log,
and what a decision record does to a request's text fields before it is stored.

Card numbers (13 to 19 digits that pass the Luhn check, grouped by spaces, dashes or dots,
or glued to a word such as ``VISA4111...``), IBANs (that pass the ISO 13616 mod-97 check, in
either case), email addresses and phone numbers become ``[CARD]``, ``[IBAN]``, ``[EMAIL]``
and ``[PHONE]``. The checksums keep order ids and amounts intact.

Every pattern runs in time linear in the text: each repetition is bounded (an email's local
part by RFC 5321's 64 characters, a domain label by 63), so no input makes one backtrack
over the whole text (64 KiB of ``1.1.1...`` took 5.7 s with an unbounded local part).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d.-])\d(?:[ .-]?\d){12,18}(?![\d-]|\.\d)")
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
    r"\.[A-Za-z]{2,24}\b"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])"
)
_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$|^\d{1,2}[./-]\d{1,2}[./-]\d{2,4}$")
PLACEHOLDERS = {"card": "[CARD]", "iban": "[IBAN]", "email": "[EMAIL]", "phone": "[PHONE]"}


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a card number (digits only)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


@dataclass
class Redaction:
    """A redacted text and how many of each kind were found (never the values)."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def found(self) -> bool:
        return bool(self.counts)


def redact(text: str) -> Redaction:
    """``text`` with card numbers, IBANs, emails and phone numbers replaced by placeholders."""
    counts: Counter[str] = Counter()

    def sub(kind: str, pattern: re.Pattern[str], keep: object, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if keep is not None and not keep(match.group(0)):  # type: ignore[operator]
                return match.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(replace, value)

    out = _IBAN.sub(lambda m: _iban_prefix(m.group(0), counts), text)
    out = sub("card", _CARD, _is_card, out)
    out = sub("email", _EMAIL, None, out) if "@" in out else out
    out = sub("phone", _PHONE, _is_phone, out)
    return Redaction(out, counts)


def _iban_prefix(candidate: str, counts: Counter[str]) -> str:
    """``[IBAN]`` for the longest valid IBAN the candidate starts with, the rest kept as it is.

    The pattern takes letters in either case, so it may run on into the next words ("DE89 ...
    00 today"): the shorter readings, cut where a space is, are tried too."""
    cuts = [len(candidate)] + [i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " "]
    for cut in cuts:
        if iban_valid(candidate[:cut]):
            counts["iban"] += 1
            return PLACEHOLDERS["iban"] + candidate[cut:]
    return candidate


def _is_card(candidate: str) -> bool:
    if "." in candidate and min(len(g) for g in candidate.split(".")) < 3:
        return False  # a decimal number (3.14159...), not card digits grouped by dots
    return luhn_valid(re.sub(r"\D", "", candidate))


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if _DATE.match(candidate.strip()) or not 8 <= len(digits) <= 15:
        return False
    return candidate.lstrip().startswith(("+", "(")) or len(re.findall(r"[ .-]", candidate)) >= 2
