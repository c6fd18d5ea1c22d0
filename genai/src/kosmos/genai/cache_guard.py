"""The false-hit guard of the semantic cache: do two close questions still ask the same thing?

Sentence embeddings put "Why was my card declined?" and "Why was my card not declined?"
closer than most paraphrases. Cosine similarity cannot see such differences, so a
candidate above the similarity threshold must also pass these cheap lexical checks:

- the same numbers (amounts, counts, days, card endings), digits or words;
- the same negation (an odd number of "not/never/no/n't/without" flips the meaning);
- the same named entities (capitalised words inside a sentence, acronyms, codes);
- the same choice within each group of mutually exclusive terms (months, weekdays,
  countries, currencies, card and account products, directions such as send/receive,
  deposit/withdraw, lock/unlock, increase/decrease, before/after).

A difference means "no hit". The guard errs towards misses: a miss costs one model call,
a false hit gives a user someone else's answer.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z][A-Za-z'&.-]*[A-Za-z]|[A-Za-z]|\d+(?:[.,]\d+)*")
_NEGATIONS = {"not", "no", "never", "without", "cannot", "nor", "none", "neither", "nothing", "nobody"}
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "thousand": 1000, "million": 1000000,
    "once": 1, "twice": 2, "single": 1, "double": 2, "dozen": 12, "half": 0.5,
}  # fmt: skip
_OBJECT_NOUNS = {"project", "deployment", "experiment", "dataset", "team", "prompt", "endpoint"}
_STARTS = {"a", "an", "the", "i", "my", "is", "are", "can", "how", "what", "why", "when", "where", "do"}

# Groups of mutually exclusive terms; within a group each entry lists the words of one sense.
_GROUPS: dict[str, list[set[str]]] = {
    "month": [{m} for m in (
        ["january", "february", "march", "april", "may", "june", "july", "august", "september",
         "october", "november", "december"]
    )] + [{"jan"}, {"feb"}, {"mar"}, {"apr"}, {"jun"}, {"jul"}, {"aug"}, {"sep", "sept"}, {"oct"},
          {"nov"}, {"dec"}],
    "weekday": [{d} for d in ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]],
    "day": [{"today", "tonight"}, {"yesterday"}, {"tomorrow"}, {"weekend"}, {"weekday", "weekdays"}],
    "period": [{"daily", "day", "days"}, {"weekly", "week", "weeks"}, {"monthly", "month", "months"},
               {"yearly", "annual", "annually", "year", "years"}, {"hour", "hours", "hourly"}],
    "currency": [{"dollar", "dollars", "usd", "$"}, {"euro", "euros", "eur", "€"},
                 {"pound", "pounds", "gbp", "sterling", "£"}, {"yen", "jpy"}, {"franc", "francs", "chf"},
                 {"bitcoin", "btc", "crypto", "cryptocurrency"}],
    "card": [{"credit"}, {"debit"}, {"prepaid"}, {"virtual"}, {"physical", "plastic"}, {"business"},
             {"gift"}, {"contactless"}],
    "network": [{"visa"}, {"mastercard"}, {"amex", "american"}, {"paypal"}, {"apple"}, {"google"}],
    "account": [{"savings", "saving"}, {"checking", "current"}, {"joint"}, {"personal"}, {"student"},
                {"premium", "gold", "platinum", "metal"}],
    "secret": [{"password", "passcode"}, {"pin"}, {"username", "login"}, {"email"}, {"phone", "mobile"},
               {"address"}],
    "thing": [{"loan", "loans"}, {"mortgage"}, {"overdraft"}, {"subscription", "subscriptions"},
              {"insurance"}, {"invoice", "invoices", "bill", "bills"}, {"statement", "statements"},
              {"cheque", "check", "cheques", "checks"}, {"atm", "cash"}, {"stock", "stocks", "shares"}],
    "direction": [{"send", "sending", "sent", "pay", "outgoing"}, {"receive", "receiving", "received",
                  "incoming", "get", "getting"}],
    "flow": [{"deposit", "deposits", "deposited", "top", "add", "load"},
             {"withdraw", "withdrawal", "withdrawals", "withdrew", "take"}],
    "lock": [{"lock", "freeze", "block", "locked", "frozen", "blocked", "suspend", "suspended"},
             {"unlock", "unfreeze", "unblock", "unlocked", "unfrozen", "unblocked", "reactivate"}],
    "toggle": [{"enable", "activate", "enabled", "activated"},
               {"disable", "deactivate", "disabled", "deactivated"}],
    "person": [{"who", "whom"}, {"whose"}],
    "change": [{"increase", "raise", "higher", "more", "up", "increased", "raised"},
               {"decrease", "lower", "reduce", "less", "down", "decreased", "lowered", "reduced"}],
    "order": [{"before", "earlier", "prior"}, {"after", "later"}],
    "open": [{"open", "opening", "opened", "create"}, {"close", "closing", "closed", "cancel", "cancelled",
             "delete", "terminate"}],
    "decision": [{"approve", "approved", "accept", "accepted", "succeed", "succeeded", "successful"},
                 {"decline", "declined", "reject", "rejected", "deny", "denied", "fail", "failed",
                  "refused"}],
    "scope": [{"domestic", "local", "national"}, {"international", "abroad", "foreign", "overseas"}],
    "extreme": [{"minimum", "min", "least", "lowest"}, {"maximum", "max", "most", "highest"}],
    "who": [{"i", "me", "my", "mine", "myself"}, {"he", "him", "his", "she", "her", "they", "their",
            "someone", "somebody", "partner", "husband", "wife", "child", "son", "daughter"}],
    "first": [{"first"}, {"last", "final"}, {"next"}, {"previous"}],
}  # fmt: skip
_SPECIFIERS = {"month", "weekday", "day", "currency", "card", "network", "account", "secret", "thing"}
"""Groups where naming a term on one side only narrows the question (a "March statement")."""
_STOPWORDS = {
    "a", "an", "the", "i", "me", "my", "you", "your", "we", "our", "it", "its", "is", "are", "was", "were",
    "be", "been", "do", "does", "did", "can", "could", "would", "should", "will", "shall", "may", "might",
    "must", "have", "has", "had", "how", "what", "why", "when", "where", "which", "who", "whose", "to", "of",
    "in", "on", "at", "for", "from", "with", "by", "about", "into", "and", "or", "if", "that", "this",
    "there", "there's", "what's", "any", "some", "way", "please", "tell", "explain", "best", "steps",
}  # fmt: skip
_SYNONYMS = [
    {"change", "update", "modify", "edit", "amend"},
    {"find", "see", "view", "get", "download", "check", "read", "access", "locate", "show"},
    {"need", "require", "requir"},
    {"use", "apply"},
    {"create", "define", "make", "build", "set", "setup", "add", "brew", "prepare"},
    {"author", "wrote", "write", "writer"},
    {"stop", "end", "halt"},
    {"contact", "reach", "call"},
    {"support", "service", "help", "assistance"},
    {"fee", "charge", "cost", "price"},
    {"problem", "issue", "error"},
]
"""Words a paraphrase may exchange for each other (the swapped-word check allows these)."""
_SYNONYM = {word: i for i, words in enumerate(_SYNONYMS) for word in words}
_SENSES: dict[str, tuple[str, int]] = {
    word: (group, i) for group, senses in _GROUPS.items() for i, sense in enumerate(senses) for word in sense
}


def _tokens(text: str) -> list[str]:
    text = re.sub(r"n't\b", " not", text.replace("\u2019", "'"))
    text = re.sub(r"\b(?:turn|switch)(?:ed|ing)? on\b", "enable", text, flags=re.IGNORECASE)
    text = re.sub(r"\b(?:turn|switch)(?:ed|ing)? off\b", "disable", text, flags=re.IGNORECASE)
    text = re.sub(r"\bcan not\b", "cannot", text, flags=re.IGNORECASE)
    return _WORD.findall(text)


def _numbers(tokens: list[str]) -> Counter[float]:
    out: Counter[float] = Counter()
    for t in tokens:
        low = t.lower()
        if t[0].isdigit():
            out[float(t.replace(",", ""))] += 1
        elif low in _NUMBER_WORDS:
            out[float(_NUMBER_WORDS[low])] += 1
    return out


def _entities(text: str, tokens: list[str]) -> set[str]:
    out = set()
    sentence_start, previous = True, ""
    for t in tokens:
        low = t.lower().rstrip(".")
        if low in _SENSES or low in _NUMBER_WORDS or t[0].isdigit():
            sentence_start, previous = False, low
            continue
        acronym = len(t) > 1 and t.isupper()
        if previous in _OBJECT_NOUNS:  # "project acme", "deployment scorer-v2": identifiers
            out.add(low)
        if acronym or (t[0].isupper() and not sentence_start and low not in _STARTS):
            out.add(low)
        sentence_start = t.endswith((".", "?", "!"))
        previous = low
    return out


def _senses(tokens: list[str]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for t in tokens:
        group = _SENSES.get(t.lower().rstrip("."))
        if group:
            out.setdefault(group[0], set()).add(group[1])
    return out


def _symbols(text: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for sym in ("$", "€", "£"):
        if sym in text:
            group, sense = _SENSES[sym]
            out.setdefault(group, set()).add(sense)
    return out


def meaning_differs(query: str, candidate: str) -> str | None:
    """Why ``query`` may not be answered by ``candidate``'s cached answer, or None if it may."""
    qt, ct = _tokens(query), _tokens(candidate)
    if _numbers(qt) != _numbers(ct):
        return "numbers differ"
    qn = sum(t.lower() in _NEGATIONS for t in qt)
    cn = sum(t.lower() in _NEGATIONS for t in ct)
    if qn % 2 != cn % 2:
        return "negation differs"
    if _entities(query, qt) != _entities(candidate, ct):
        return "named entities differ"
    qs, cs = _senses(qt), _senses(ct)
    for group, senses in _symbols(query).items():
        qs.setdefault(group, set()).update(senses)
    for group, senses in _symbols(candidate).items():
        cs.setdefault(group, set()).update(senses)
    for group in qs.keys() | cs.keys():
        a, b = qs.get(group, set()), cs.get(group, set())
        if a != b and (group in _SPECIFIERS or (a - b and b - a)):
            return f"{group} differs"
    return _swapped_word(qt, ct)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _content(tokens: list[str]) -> list[str]:
    return [t.lower() for t in tokens if t.lower() not in _STOPWORDS]


def _swapped_word(qt: list[str], ct: list[str]) -> str | None:
    """The same question with one word exchanged for another ("tea" for "coffee", "upload" for
    "download") asks about something else; a synonym from the same group is allowed."""
    a, b = _content(qt), _content(ct)
    ops = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if len(ops) != 1 or ops[0][0] != "replace" or len(a) < 2:
        return None
    _, i1, i2, j1, j2 = ops[0]
    if i2 - i1 != 1 or j2 - j1 != 1:
        return None
    x, y = a[i1], b[j1]
    if _stem(x) == _stem(y) or _SYNONYM.get(_stem(x), -1) == _SYNONYM.get(_stem(y), -2):
        return None
    if _SENSES.get(x) is not None and _SENSES.get(x) == _SENSES.get(y):
        return None
    return f"{x!r} was swapped for {y!r}"
