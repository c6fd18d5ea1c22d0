"""PII redaction: what the gateway does to a prompt before it reaches a model, the cache or a log.

Card numbers (13 to 19 digits that pass the Luhn check), IBANs (that pass the ISO 13616
mod-97 check), email addresses and phone numbers become ``[CARD]``, ``[IBAN]``,
``[EMAIL]`` and ``[PHONE]``. The checksums keep order ids and amounts intact.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
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
    compact = iban.replace(" ", "")
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

    out = sub("iban", _IBAN, iban_valid, text)
    out = sub("card", _CARD, lambda s: luhn_valid(re.sub(r"\D", "", s)), out)
    out = sub("email", _EMAIL, None, out)
    out = sub("phone", _PHONE, _is_phone, out)
    return Redaction(out, counts)


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if _DATE.match(candidate.strip()) or not 8 <= len(digits) <= 15:
        return False
    return candidate.lstrip().startswith(("+", "(")) or len(re.findall(r"[ .-]", candidate)) >= 2
