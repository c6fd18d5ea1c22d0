"""Training pairs for the cache verifier, made by systematic perturbation of template questions.

A pair is (cached question, new question, same meaning?). Paraphrases come from rewording a
question (other templates of the same intent, synonyms); near-misses from changing one thing
that changes the answer: negation, an antonym, swapped roles, an entity, a number, a date, a
product, a unit or a metric. The vocabularies here are deliberately *not* those of the
benchmark sets in ``bench/data`` (other domains, names, verbs and objects), so a score on those
sets measures generalization, not recall of the training words. ``family`` names the
perturbation, so whole families can be held out when measuring.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

FAMILIES = ("negation", "antonym", "role_swap", "entity", "number", "date", "product", "unit", "metric")

# intents: (verb phrase, its rewordings); objects are filled in
_ACTIONS = [
    ("renew", ["extend", "prolong"]),
    ("borrow", ["check out", "take out"]),
    ("reserve", ["put a hold on", "hold"]),
    ("print", ["make a printout of"]),
    ("repair", ["fix", "mend"]),
    ("wash", ["clean"]),
    ("paint", ["repaint"]),
    ("plant", ["sow"]),
    ("water", ["irrigate"]),
    ("adopt", ["take home"]),
    ("groom", ["trim"]),
    ("tune", ["adjust"]),
    ("assemble", ["put together", "build"]),
    ("pack", ["box up"]),
    ("measure", ["size"]),
    ("sharpen", ["hone"]),
]
_OBJECTS = {
    "library": ["library book", "audiobook", "study room", "laptop loan", "microfilm reader", "e-reader"],
    "garden": ["hedge", "lawn", "rose bush", "vegetable bed", "compost bin", "greenhouse"],
    "pets": ["puppy", "kitten", "parrot", "hamster", "rabbit", "goldfish"],
    "workshop": ["bicycle chain", "kitchen knife", "guitar", "piano", "wardrobe", "bookshelf"],
    "moving": ["piano crate", "fragile vase", "mirror", "aquarium", "chandelier", "rug"],
}
_ANTONYMS = [
    ("attach", "detach"), ("mount", "unmount"), ("inflate", "deflate"), ("tighten", "loosen"),
    ("heat", "cool"), ("fill", "drain"), ("fold", "unfold"), ("load", "unload"), ("pin", "unpin"),
    ("plug in", "unplug"), ("wrap", "unwrap"), ("raise", "lower"), ("widen", "narrow"),
    ("lengthen", "shorten"), ("brighten", "dim"), ("thicken", "thin"), ("zip", "unzip"),
    ("merge", "split"), ("bookmark", "unbookmark"), ("star", "unstar"), ("follow", "unfollow"),
    ("lend", "borrow back"), ("buy", "sell"), ("import", "export"), ("upload", "download"),
    ("pack", "unpack"), ("board", "disembark from"), ("show", "hide"), ("expand", "collapse"),
]  # fmt: skip
_ANTONYM_OBJECTS = ["the tent", "the trailer", "the shelf", "the banner", "the canoe", "the tarp", "the sail",
                    "the hammock", "the poster", "the crate", "the hose", "the bookmark bar", "the sidebar",
                    "the playlist", "the photo album", "the recipe"]  # fmt: skip
_ROLES = [
    ("landowner", "farmer"), ("coach", "athlete"), ("editor", "author"), ("vet", "owner"),
    ("referee", "player"), ("publisher", "writer"), ("seller", "auctioneer"), ("nurse", "doctor"),
    ("captain", "crew"), ("mentor", "apprentice"), ("chef", "waiter"), ("agent", "actor"),
    ("librarian", "reader"), ("mechanic", "driver"), ("principal", "parent"), ("breeder", "buyer"),
]  # fmt: skip
_ROLE_VERBS = ["pay", "invoice", "rate", "contact", "replace", "sue", "train", "thank", "warn", "fire"]
_PLACES = ["Oslo", "Dublin", "Vienna", "Prague", "Seoul", "Lima", "Nairobi", "Quito", "Riga", "Hanoi"]
_PLACES += ["Bergen", "Porto", "Krakow", "Tallinn", "Accra", "Perth", "Denver", "Tucson", "Leeds", "Cork"]
_PEOPLE = ["Priya", "Jonas", "Aiko", "Mateo", "Fatima", "Lars", "Chloe", "Kwame", "Ines", "Omar"]
_BRANDS = ["Zephyr", "Kestrel", "Orbitek", "Lumio", "Fjord", "Vantora", "Brisk", "Nimbus", "Quill", "Solace"]
_FROM_TO = [("the spreadsheet", "the notebook"), ("the archive", "the inbox"), ("the attic", "the garage"),
            ("the shed", "the porch"), ("the van", "the warehouse"), ("the draft", "the final copy"),
            ("the left tank", "the right tank"), ("the front pocket", "the back pocket"),
            ("the old phone", "the new tablet"), ("Tier A", "Tier B")]  # fmt: skip
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["February", "April", "May", "August", "September"]
_TIMES = [("this week", "next week"), ("in the morning", "in the evening"), ("before noon", "after noon"),
          ("at the start of the month", "at the end of the month"), ("last spring", "next spring"),
          ("on weekdays", "on weekends"), ("this year", "last year")]  # fmt: skip
_UNITS = [("per hour", "per week"), ("in liters", "in gallons"), ("in inches", "in centimeters"),
          ("per person", "per group"), ("in minutes", "in seconds"), ("per page", "per book"),
          ("per night", "per stay"), ("per kilometer", "per trip"), ("in ounces", "in grams")]  # fmt: skip
_METRICS = [
    ("waiting time", "queue length"), ("return rate", "loan rate"), ("attendance", "dropout rate"),
    ("germination rate", "yield"), ("adoption rate", "surrender rate"), ("fuel consumption", "top speed"),
    ("weight", "height"), ("occupancy", "turnover"), ("average rating", "review count"),
    ("noise level", "humidity"),
]  # fmt: skip
_ADJECTIVES = ["waterproof", "refundable", "transferable", "open", "available", "included", "allowed",
               "safe", "free", "required"]  # fmt: skip

_PHRASINGS = [
    "How do I {v} the {o}?",
    "How can I {v} the {o}?",
    "What's the way to {v} the {o}?",
    "I need to {v} the {o}, how do I do that?",
    "Can you tell me how to {v} the {o}?",
    "What are the steps to {v} the {o}?",
    "Is there a way to {v} the {o}?",
    "Could you explain how I {v} the {o}?",
]


def _paraphrases(rng: random.Random) -> Iterator[tuple[str, str]]:
    for verb, rewordings in _ACTIONS:
        for objects in _OBJECTS.values():
            obj = rng.choice(objects)
            a, b = rng.sample(_PHRASINGS, 2)
            yield a.format(v=verb, o=obj), b.format(v=rng.choice([verb, *rewordings]), o=obj)
            yield a.format(v=verb, o=obj), rng.choice(_PHRASINGS).format(v=rng.choice(rewordings), o=obj)


def _near_misses(rng: random.Random) -> Iterator[tuple[str, str, str]]:
    for _ in range(3):
        for verb, opposite in _ANTONYMS:
            phrasing, obj = rng.choice(_PHRASINGS), rng.choice(_ANTONYM_OBJECTS)
            yield "antonym", phrasing.format(v=verb, o=obj[4:]), phrasing.format(v=opposite, o=obj[4:])
        for first, second in _ROLES:
            verb = rng.choice(_ROLE_VERBS)
            pattern = rng.choice(
                [
                    "Can the {x} {v} the {y}?",
                    "Why would the {x} {v} the {y}?",
                    "When does the {x} {v} the {y}?",
                    "Should the {x} {v} the {y}?",
                ]
            )
            yield (
                "role_swap",
                pattern.format(x=first, v=verb, y=second),
                pattern.format(x=second, v=verb, y=first),
            )
        for source, target in _FROM_TO:
            thing = rng.choice(
                ["the notes", "the photos", "the contacts", "the boxes", "the water", "the files"]
            )
            pattern = rng.choice(["How do I move {t} from {a} to {b}?", "Can I copy {t} from {a} to {b}?",
                                  "What happens if I shift {t} from {a} to {b}?"])  # fmt: skip
            yield (
                "role_swap",
                pattern.format(t=thing, a=source, b=target),
                pattern.format(t=thing, a=target, b=source),
            )
        for adjective in _ADJECTIVES:
            obj = rng.choice([o for objects in _OBJECTS.values() for o in objects])
            positive = rng.choice(["Is the {o} {a}?", "Why is the {o} {a}?", "Is it true the {o} is {a}?"])
            negative = positive.replace(" is {a}", " is not {a}").replace(
                "Is the {o} {a}", "Is the {o} not {a}"
            )
            negative = negative.replace("Why is the {o} {a}", "Why isn't the {o} {a}")
            yield "negation", positive.format(o=obj, a=adjective), negative.format(o=obj, a=adjective)
        for verb, _ in _ACTIONS:
            obj = rng.choice([o for objects in _OBJECTS.values() for o in objects])
            yield "negation", f"Why can I {verb} the {obj}?", f"Why can't I {verb} the {obj}?"
        for names in (_PLACES, _PEOPLE, _BRANDS):
            for _ in range(4):
                x, y = rng.sample(names, 2)
                pattern = rng.choice(["Is the {n} office open late?", "How do I reach {n} support?",
                                      "Does the {n} warranty cover this?", "Can {n} approve my request?",
                                      "Is there parking near {n}?"])  # fmt: skip
                yield "entity", pattern.format(n=x), pattern.format(n=y)
        for _ in range(12):
            x, y = rng.sample([2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24, 30, 45, 60, 90, 120, 250, 500], 2)
            pattern = rng.choice(["Can I renew {n} books at once?", "Is there a fee after {n} days?",
                                  "How much is a table for {n}?", "Do you groom dogs over {n} kilos?",
                                  "Is locker {n} free?", "What does the {n}-liter tank cost?"])  # fmt: skip
            yield "number", pattern.format(n=x), pattern.format(n=y)
        for _ in range(4):
            x, y = rng.sample(_WEEKDAYS, 2)
            yield "date", f"Is the workshop open on {x}?", f"Is the workshop open on {y}?"
            x, y = rng.sample(_MONTHS, 2)
            yield "date", f"Can I book the hall in {x}?", f"Can I book the hall in {y}?"
        for first, second in _TIMES:
            yield "date", f"Are there guided tours {first}?", f"Are there guided tours {second}?"
        for objects in _OBJECTS.values():
            x, y = rng.sample(objects, 2)
            verb = rng.choice(_ACTIONS)[0]
            phrasing = rng.choice(_PHRASINGS)
            yield "product", phrasing.format(v=verb, o=x), phrasing.format(v=verb, o=y)
        for first, second in _UNITS:
            pattern = rng.choice(["Is the price {u}?", "Do you charge {u}?", "Is the limit measured {u}?"])
            yield "unit", pattern.format(u=first), pattern.format(u=second)
        for first, second in _METRICS:
            place = rng.choice(
                ["the shelter", "the library", "the garden center", "the workshop", "the clinic"]
            )
            pattern = rng.choice(["What is the {m} at {p}?", "How do you track the {m} at {p}?",
                                  "Has the {m} at {p} gone up?"])  # fmt: skip
            yield "metric", pattern.format(m=first, p=place), pattern.format(m=second, p=place)


def training_pairs(seed: int = 0) -> list[dict[str, str | int]]:
    """Labelled pairs: ``a`` (cached), ``b`` (new), ``same`` (1: same meaning), ``family``."""
    rng = random.Random(seed)
    rows: list[dict[str, str | int]] = []
    for a, b in _paraphrases(rng):
        rows.append({"a": a, "b": b, "same": 1, "family": "paraphrase"})
        rows.append({"a": b, "b": a, "same": 1, "family": "paraphrase"})
    for a, b in [(a, a) for a, _ in list(_paraphrases(rng))[::4]]:
        rows.append({"a": a, "b": b, "same": 1, "family": "identical"})
    for family, a, b in _near_misses(rng):
        rows.append({"a": a, "b": b, "same": 0, "family": family})
    unique = {(r["a"], r["b"]): r for r in rows if r["a"] != r["b"] or r["family"] == "identical"}
    return list(unique.values())
