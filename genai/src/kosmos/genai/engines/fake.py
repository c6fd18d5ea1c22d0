"""A FAKE engine for tests of everything above the engine: no model, deterministic text.

It is registered like the real engines (``engine: fake``) but never picked by ``auto``.
The gateway, routing, rollout and metering tests use it so they run without loading a
model; the real engines are covered by the engine contract suite and the vLLM tests.
Tokens are words; the text is a function of the prompt (greedy) or of the seed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from typing import Any

from kosmos.genai.engines.base import Delta, InferenceEngine, SamplingParams, check_context

WORDS = "the card payment was approved after a review of the account and its history".split()  # noqa: SIM905


class FakeEngine(InferenceEngine):
    """FAKE: words for tokens; same prompt and temperature 0, or same seed, give the same text."""

    name = "fake"
    auto_rank = None

    async def start(self) -> None:
        self.delay = 0.002  # a token every 2 ms: streams interleave like a real engine's

    @property
    def context_length(self) -> int:
        return self.spec.max_model_len or 2048

    def encode(self, text: str) -> list[int]:
        return [int(hashlib.sha256(w.encode()).hexdigest()[:6], 16) for w in text.split()]

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        return self.encode(" ".join(f"{m['role']}: {m['content']}" for m in messages) + " assistant:")

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        check_context(prompt_ids, params, self.context_length)
        if params.temperature <= 0:
            rng = random.Random(sum(prompt_ids))
        else:
            rng = random.Random(params.seed) if params.seed is not None else random.Random()
        text = ""
        for n in range(1, params.max_tokens + 1):
            await asyncio.sleep(self.delay)
            word = (" " if text else "") + rng.choice(WORDS)
            hit = next((s for s in params.stop if s in text + word), None)
            if hit is not None:
                yield Delta(
                    (text + word)[: (text + word).index(hit)][len(text) :], "stop", n, len(prompt_ids)
                )
                return
            text += word
            yield Delta(word, "length" if n == params.max_tokens else None, n, len(prompt_ids))

    def describe(self) -> dict[str, Any]:
        return {"fake": True}
