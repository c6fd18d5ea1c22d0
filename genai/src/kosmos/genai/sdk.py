"""The GenAI SDK: prompts, the semantic cache and the gateway policy, through the control plane.

Every call takes the project first and an optional ``client`` (default: the saved login).
LLM calls themselves go through any OpenAI client: see ``openai_base_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kosmos.platform.client import KosmosClient, client_or_default
from kosmos.platform.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidInput,
    KosmosError,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)


def openai_base_url(project: str, *, client: KosmosClient | None = None) -> str:
    """The base URL to give an OpenAI client for ``project`` (the API key is a Kosmos token):
    the data plane's, so no LLM token passes through the control plane."""
    with client_or_default(client) as c:
        return f"{c.dataplane_url}/{project}/openai/v1"


def kosmos_error(exc: Exception, project: str, model: str) -> KosmosError:
    """The gateway's OpenAI-shaped error as the Kosmos error the rest of the SDK raises, with a hint."""
    import openai

    body = getattr(exc, "body", None)
    message = (body.get("message") if isinstance(body, dict) else None) or str(exc)
    request_id = getattr(getattr(exc, "response", None), "headers", {}).get("x-request-id")
    if isinstance(exc, openai.NotFoundError):
        return NotFound(
            f"{message}. Project {project!r} has no LLM deployment or route {model!r}: deploy one with "
            f"`kosmos deploy create {model} -p {project} --model <registered LLM> --llm --wait`, or route "
            f"{model!r} to an existing one (kosmos.llm.set_policy)",
            request_id=request_id,
        )
    if isinstance(exc, openai.APIConnectionError):
        return ConnectionFailed(f"the gateway could not be reached: {message}")
    status = getattr(exc, "status_code", None)
    kind = {400: InvalidInput, 401: Unauthenticated, 403: Forbidden, 409: Conflict, 422: InvalidInput}.get(
        status or 0, ServiceUnavailable if (status or 500) >= 500 or status == 429 else KosmosError
    )
    return kind(message, request_id=request_id)


# -- prompts ----------------------------------------------------------------------------
def openai_client(project: str, *, client: KosmosClient | None = None) -> Any:
    """An official ``openai.OpenAI`` client on the project's gateway (the key is your Kosmos token)."""
    from openai import OpenAI

    with client_or_default(client) as c:
        return OpenAI(
            base_url=openai_base_url(project, client=c), api_key=c.token, max_retries=0, timeout=300
        )


def chat(
    project: str,
    messages: list[dict[str, Any]],
    *,
    model: str = "assistant-llm",
    prompt: str | None = None,
    variables: dict[str, Any] | None = None,
    max_tokens: int = 128,
    temperature: float = 0.0,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """One gateway call: the text, and what the gateway did (cache outcome, prompt version,
    cache entry, request id, usage)."""
    import openai

    extra = {"kosmos": {"prompt": prompt, "variables": variables or {}}} if prompt else None
    try:
        raw = openai_client(project, client=client).chat.completions.with_raw_response.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=temperature, extra_body=extra
        )
    except openai.APIError as exc:
        raise kosmos_error(exc, project, model) from None
    answer = raw.parse()
    return {
        "text": answer.choices[0].message.content,
        "cache": raw.headers.get("x-kosmos-cache"),
        "prompt": raw.headers.get("x-kosmos-prompt"),
        "cache_entry": raw.headers.get("x-kosmos-cache-entry"),
        "request_id": raw.headers.get("x-request-id"),
        "usage": answer.usage.model_dump() if answer.usage else None,
    }


def register_prompt(
    project: str,
    name: str,
    template: str | list[dict[str, Any]],
    commit_message: str,
    *,
    tags: dict[str, str] | None = None,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """A new version of prompt ``name`` in the MLflow prompt registry (``{{variables}}`` in the text)."""
    body = {"name": name, "template": template, "commit_message": commit_message, "tags": tags or {}}
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/prompts", body)


def list_prompts(project: str, *, client: KosmosClient | None = None) -> list[dict[str, Any]]:
    """The project's prompts with their latest version and aliases."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/prompts")


def show_prompt(project: str, name: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """Every version (template, commit message, aliases) and any A/B splits."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/prompts/{name}")


def diff_prompt(project: str, name: str, a: int, b: int, *, client: KosmosClient | None = None) -> str:
    """A unified diff of two versions' templates."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/prompts/{name}/diff", a=a, b=b)["diff"]


def set_prompt_alias(
    project: str, name: str, alias: str, version: int, *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Point ``alias`` (e.g. production) at ``version``; cached answers made with the old one are dropped."""
    with client_or_default(client) as c:
        return c.put(f"/projects/{project}/prompts/{name}/aliases/{alias}", {"version": version})


def render_prompt(
    project: str,
    name: str,
    variables: dict[str, Any],
    *,
    version: int | None = None,
    alias: str | None = None,
    client: KosmosClient | None = None,
) -> str | list[dict[str, Any]]:
    """The template filled in; a missing or unknown variable raises InvalidInput naming it."""
    body = {"variables": variables, "version": version, "alias": alias}
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/prompts/{name}/render", body)["rendered"]


def split_prompt(
    project: str,
    name: str,
    alias: str,
    version: int | None,
    weight: float = 0.5,
    *,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Send ``weight`` of ``name@alias`` traffic to ``version`` (an A/B test); ``version=None`` ends it."""
    path = f"/projects/{project}/prompts/{name}/splits/{alias}"
    with client_or_default(client) as c:
        if version is None:
            return c.delete(path)
        return c.put(path, {"version": version, "weight": weight})


def prompt_results(
    project: str, name: str, *, hours: float = 168, client: KosmosClient | None = None
) -> list[dict[str, Any]]:
    """Per prompt version: requests, reported successes and failures, latency and tokens."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/prompts/{name}/ab", hours=hours)


def report_outcome(
    project: str, request_id: str, outcome: str, *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Tell the platform how an answer worked out (``success`` or ``failure``), by its X-Request-Id."""
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/llm/requests/{request_id}/outcome", {"outcome": outcome})


# -- assistant --------------------------------------------------------------------------
def ask_assistant(
    project: str,
    question: str,
    *,
    previous: str | None = None,
    timeout_s: float = 180.0,
    client: KosmosClient | None = None,
) -> dict[str, Any]:
    """Ask the assistant: ``answer`` (the model's words), ``summary`` (built from the facts and
    passages alone), ``facts`` (live lookups in a project you can see) and ``sources`` (cited
    doc sections). ``previous``: the question before, so a follow-up keeps its context."""
    body = {"question": question, **({"previous": previous} if previous else {})}
    with client_or_default(client) as c:
        return c.request("POST", f"/projects/{project}/assistant", json=body, timeout=timeout_s)


def ask_assistant_stream(
    project: str,
    question: str,
    *,
    previous: str | None = None,
    timeout_s: float = 180.0,
    client: KosmosClient | None = None,
) -> Iterator[dict[str, Any]]:
    """Ask the assistant and get its answer as it is made: a ``facts`` event (project, facts,
    summary, sources) at once, ``delta`` events with the model's words, then ``done`` with the
    answer as it may be shown (None when withheld: retract what was streamed) and ``model``."""
    body = {"question": question, "stream": True, **({"previous": previous} if previous else {})}
    with client_or_default(client) as c:
        yield from c.stream_json(f"/projects/{project}/assistant", body, timeout=timeout_s)


# -- cache ------------------------------------------------------------------------------
def cache_stats(project: str, *, hours: float = 24, client: KosmosClient | None = None) -> dict[str, Any]:
    """Hit rate, the estimated false-hit rate (audits) with its 95% interval, tokens and latency
    saved, flagged answers, invalidations and evictions."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/cache/stats", hours=hours)


def cache_namespaces(
    project: str, *, hours: float = 24, client: KosmosClient | None = None
) -> list[dict[str, Any]]:
    """The project's cache partitions (model, version, prompt, threshold, entries), each with
    ``stats`` over the last ``hours``: hits, misses, audits, the estimated false-hit rate and its
    95% interval, flags, tokens and latency saved."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/cache/namespaces", hours=hours)


def set_cache_threshold(
    project: str, namespace: int, threshold: float, *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """The similarity a question needs to hit in ``namespace``."""
    with client_or_default(client) as c:
        return c.put(f"/projects/{project}/cache/namespaces/{namespace}", {"threshold": threshold})


def invalidate_cache(
    project: str,
    *,
    entry: int | None = None,
    namespace: int | None = None,
    model: str | None = None,
    prompt: str | None = None,
    reason: str = "invalidated by hand",
    client: KosmosClient | None = None,
) -> int:
    """Drop one entry, a namespace, a model's or a prompt's entries; returns how many went."""
    body = {"entry": entry, "namespace": namespace, "model": model, "prompt": prompt, "reason": reason}
    with client_or_default(client) as c:
        return c.post(
            f"/projects/{project}/cache/invalidate", {k: v for k, v in body.items() if v is not None}
        )["invalidated"]


def flush_cache(project: str, *, client: KosmosClient | None = None) -> int:
    """Drop every cached answer of the project; returns how many went."""
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/cache/flush", {})["invalidated"]


def flag_cached_answer(
    project: str, entry: int, reason: str = "wrong answer", *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Report a cached answer (its X-Kosmos-Cache-Entry) as wrong: it is dropped and counted."""
    with client_or_default(client) as c:
        return c.post(f"/projects/{project}/cache/entries/{entry}/flag", {"reason": reason})


# -- gateway policy ---------------------------------------------------------------------
def gateway_policy(project: str, *, client: KosmosClient | None = None) -> dict[str, Any]:
    """The stored policy and the values in force (limits, routes, cache)."""
    with client_or_default(client) as c:
        return c.get(f"/projects/{project}/gateway")


def set_gateway_policy(
    project: str, policy: dict[str, Any], *, client: KosmosClient | None = None
) -> dict[str, Any]:
    """Replace the project's policy: requests_per_minute, tokens_per_day, routes, cache."""
    with client_or_default(client) as c:
        return c.put(f"/projects/{project}/gateway", policy)
