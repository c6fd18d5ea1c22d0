"""The inference-engine interface: what an LLM replica needs from an engine.

Modelled on Ray Serve LLM's engine protocol (start, generate, check_health), but
token-level: the OpenAI layer (chat templates, SSE chunks, usage) sits above it and
is shared by every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from kosmos.genai.spec import LLMSpec
    from kosmos.platform.settings import Settings


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens; ``temperature == 0`` is greedy decoding."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float = 0.0
    """OpenAI's: lowers a token's logit by this times how often the answer already used it."""
    presence_penalty: float = 0.0
    """OpenAI's: lowers a token's logit by this once the answer used it at all."""


@dataclass
class Delta:
    """New text since the last delta; the last one carries ``finish_reason``."""

    text: str
    finish_reason: str | None = None  # "stop" (EOS or a stop sequence) or "length"
    completion_tokens: int = 0  # total so far
    prompt_tokens: int = 0


class PromptTooLong(ValueError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class UnsupportedParameter(ValueError):
    """A request parameter this engine cannot apply: a 400 naming it, never silently ignored."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def check_context(prompt_ids: list[int], params: SamplingParams, context: int) -> None:
    """Raise PromptTooLong unless the prompt and ``max_tokens`` fit ``context`` (every engine alike)."""
    if len(prompt_ids) + params.max_tokens > context:
        raise PromptTooLong(
            f"the prompt has {len(prompt_ids)} tokens and max_tokens is {params.max_tokens}; "
            f"together they exceed this model's context of {context} tokens"
        )


class InferenceEngine(ABC):
    """One loaded model. Concurrent ``generate`` calls are batched by the engine.

    Engines are registered under the ``kosmos.genai.engines`` entry-point group; the class
    methods below let the platform pick and check one without loading a model.
    """

    name: ClassVar[str]
    auto_rank: ClassVar[int | None] = None
    """Preference under ``engine: auto`` (highest available wins); None: never picked by auto."""

    def __init__(self, model_path: str | Path, spec: LLMSpec, settings: Settings | None = None) -> None:
        self.model_path = Path(model_path)
        self.spec = spec
        self.settings = settings

    @classmethod
    def unavailable(cls, spec: LLMSpec, gpus: float, settings: Settings | None = None) -> str | None:
        """Why this engine cannot run ``spec`` here (``gpus``: GPUs in the cluster), or None."""
        return None

    @classmethod
    def check_spec(cls, spec: LLMSpec) -> None:
        """Raise ValueError naming the field of ``spec`` this engine cannot honour (at deploy time)."""
        return None

    @classmethod
    def version_app(cls, spec: LLMSpec, context: dict[str, Any]) -> Any | None:
        """A Serve application of the engine's own for one version, or None to run in Kosmos's
        ``LLMServer`` replica (``context``: model_id, scaling, version, and model_source, a callable
        returning the local weights folder)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What the engine runs with (shown in the deployment status)."""
        return {}

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
