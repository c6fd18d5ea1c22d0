"""``kosmos.llm``, ``kosmos.prompts`` and ``kosmos.cache`` in a notebook, on the session's project."""

from __future__ import annotations

from typing import Any

from kosmos.genai import sdk
from kosmos.platform.fluent import Namespace, Record, Table, current, project_or_session


def client(*, project: str | None = None) -> Any:
    """An official ``openai.OpenAI`` client on the project's gateway (the key is your Kosmos token)."""
    return sdk.openai_client(project_or_session(project), client=current().client)


def chat(
    message: str | list[dict[str, Any]],
    *,
    model: str = "assistant-llm",
    prompt: str | None = None,
    variables: dict[str, Any] | None = None,
    max_tokens: int = 128,
    temperature: float = 0.0,
    project: str | None = None,
) -> Record:
    """Ask ``model`` through the gateway. ``prompt`` is a registered prompt
    (``prompts:/support@production``) filled with ``variables``. Returns the text with what
    the gateway did: cache outcome, prompt version, request id, usage."""
    messages = [{"role": "user", "content": message}] if isinstance(message, str) else message
    reply = sdk.chat(
        project_or_session(project), messages, model=model, prompt=prompt, variables=variables,
        max_tokens=max_tokens, temperature=temperature, client=current().client,
    )  # fmt: skip
    return Record(**reply)


def usage(*, hours: float = 24, project: str | None = None) -> Table:
    """Requests, tokens, latency and time to first token per LLM deployment."""
    rows = current().client.get(f"/projects/{project_or_session(project)}/llm/usage", hours=hours)
    return Table(rows)


llm = Namespace(
    "llm",
    "LLM endpoints through the gateway: an OpenAI client, chat, usage, outcomes.",
    client=client,
    chat=chat,
    usage=usage,
    report_outcome=sdk.report_outcome,
    policy=sdk.gateway_policy,
    set_policy=sdk.set_gateway_policy,
)
prompts = Namespace(
    "prompts",
    "Prompts on the MLflow prompt registry: versions, aliases, diffs, A/B splits.",
    register=sdk.register_prompt,
    list=sdk.list_prompts,
    show=sdk.show_prompt,
    diff=sdk.diff_prompt,
    set_alias=sdk.set_prompt_alias,
    render=sdk.render_prompt,
    split=sdk.split_prompt,
    results=sdk.prompt_results,
)
cache = Namespace(
    "cache",
    "The gateway's semantic cache: statistics, namespaces, invalidation, feedback.",
    stats=sdk.cache_stats,
    namespaces=sdk.cache_namespaces,
    set_threshold=sdk.set_cache_threshold,
    invalidate=sdk.invalidate_cache,
    flush=sdk.flush_cache,
    flag=sdk.flag_cached_answer,
)
assistant = Namespace(
    "assistant",
    "The Kosmos assistant: ask about using the platform or the project's live state (cited).",
    ask=sdk.ask_assistant,
)
