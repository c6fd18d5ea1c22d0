"""The inference-engine interface: what an LLM replica needs from an engine.

Modelled on Ray Serve LLM's engine protocol (start, generate, check_health), but
token-level: the OpenAI layer (chat templates, SSE chunks, usage) sits above it and
is shared by every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens; ``temperature == 0`` is greedy decoding."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Delta:
    """New text since the last delta; the last one carries ``finish_reason``."""

    text: str
    finish_reason: str | None = None  # "stop" (EOS or a stop sequence) or "length"
    completion_tokens: int = 0  # total so far
    prompt_tokens: int = 0


class PromptTooLong(ValueError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class InferenceEngine(ABC):
    """One loaded model. Concurrent ``generate`` calls are batched by the engine."""

    name: str

    @abstractmethod
    async def start(self) -> None:
        """Load the model and warm it up; the replica is ready when this returns."""

    @abstractmethod
    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of ``messages`` under the model's chat template, ready for the assistant turn."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of plain text."""

    @abstractmethod
    def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        """Stream the completion of ``prompt_ids``. Closing the iterator cancels the generation."""

    @property
    @abstractmethod
    def context_length(self) -> int:
        """Most tokens (prompt + completion) one sequence may hold."""

    async def check_health(self) -> None:
        """Raise when the engine can no longer serve (Serve then replaces the replica)."""
        return None

    async def stop(self) -> None:
        """Free the model's resources."""
        return None
