"""LLM deployments as a kind of deployment (registered with the platform in ``_plugin.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class LLMKind:
    """A deployment whose spec has ``llm``: validated by ``LLMSpec``, served by ``serving.build_targets``."""

    strategies = frozenset({"direct", "canary", "blue_green"})
    """Rollout strategies the LLM router carries out. Shadow and A/B are not implemented for LLMs:
    mirroring a generation doubles its cost, and the router does not hash a key to an arm."""

    @staticmethod
    def validate(llm: dict[str, Any]) -> dict[str, Any]:
        """The engine spec with defaults left out; ValueError naming the field otherwise."""
        from kosmos.genai.spec import LLMSpec

        try:
            return LLMSpec(**llm).model_dump(exclude_defaults=True)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'llm'}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"llm: {problems}") from None

    @staticmethod
    def build_targets(record: Any, project: str, settings: Any) -> list[Any]:
        from kosmos.genai.serving import build_targets

        return build_targets(record, project, settings)

    @staticmethod
    def replay(settings: Any, project: str, record: dict[str, Any]) -> dict[str, Any]:
        """``kosmos replay`` of an LLM call's decision record (``kosmos.genai.decision``)."""
        from kosmos.genai.decision import replay

        return replay(settings, project, record)


LLM = LLMKind()
