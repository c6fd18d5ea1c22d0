"""The false-hit guard: close questions that ask different things are refused, paraphrases pass."""

from __future__ import annotations

import pytest

from kosmos.genai.cache_guard import meaning_differs


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Why was my card declined?", "Why was my card not declined?", "negation"),
        ("Can I cancel a transfer?", "Can't I cancel a transfer?", "negation"),
        ("Is there a fee to withdraw $100?", "Is there a fee to withdraw $500?", "numbers"),
        ("Can I order two cards?", "Can I order three cards?", "numbers"),
        ("How do I send money to Germany?", "How do I send money to France?", "entities"),
        (
            "What is the status of deployment fraud-v2?",
            "What is the status of deployment churn-v1?",
            "numbers",
        ),
        ("How do I block my credit card?", "How do I block my debit card?", "card"),
        ("When is my March statement ready?", "When is my April statement ready?", "month"),
        ("When is my statement ready?", "When is my March statement ready?", "month"),
        ("How do I freeze my card?", "How do I unfreeze my card?", "lock"),
        ("How do I turn on alerts?", "How do I turn off alerts?", "toggle"),
        ("How do I upload a document?", "How do I download a document?", "swapped"),
        ("How do I make tea?", "How do I make coffee?", "swapped"),
    ],
)
def test_near_misses_are_refused(a: str, b: str, why: str) -> None:
    reason = meaning_differs(b, a)
    assert reason is not None, (a, b)
    assert why.rstrip("s") in reason or (why == "swapped" and "swapped" in reason)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reset my password?", "How can I reset my password?"),
        ("How do I freeze my card?", "Can you tell me how to lock my card?"),
        ("How do I change my email address?", "How can I update my email address?"),
        ("Why can't I log in?", "I cannot log in, why?"),
        ("Can I pay in euros with my card?", "Is it possible to pay in euros with my card?"),
        ("How do I deploy a model with a canary?", "What are the steps to deploy a model using a canary?"),
    ],
)
def test_paraphrases_pass(a: str, b: str) -> None:
    assert meaning_differs(b, a) is None
