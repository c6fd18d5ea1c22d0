"""Kosmos genai. GenAI: LLM endpoints, the gateway, semantic cache, prompts, the assistant."""

__all__: list[str] = []
