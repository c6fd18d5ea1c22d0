"""The decision record of one gateway call (``kosmos explain``), and its replay (``kosmos replay``).

The record holds what made the answer: the prompt version and its variables, the messages as the
model got them (PII already redacted by the gateway), the sampling parameters, the deployment's
engine spec, the cache's decision (hit or miss, the entry, its similarity, what the guard
refused), usage and latency. ``kosmos.deployment.decisions`` writes it, off the request's path.

A replay sends the recorded messages and sampling parameters straight to the recorded model
version's replicas (no cache, no fallback) and compares the text; with greedy sampling
(temperature 0) or a recorded seed the same engine gives the same text. It also re-renders the
recorded prompt version from the registry with the recorded variables: a template changed in
place would show as a difference.
"""

from __future__ import annotations

import time
from typing import Any

from kosmos.genai.gateway import Prepared

SAMPLING = (
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
)


def llm_record(project: str, caller: str, prepared: Prepared, outcome: Any) -> dict[str, Any]:
    """The record of one call (``outcome``: its ``chat.ChatOutcome``); no I/O, no copies."""
    body, lookup = prepared.body, prepared.lookup
    route = next((r for r in prepared.routes if r.name == outcome.deployment), prepared.routes[0])
    version = outcome.model_version
    error = outcome.error.get("error", outcome.error) if isinstance(outcome.error, dict) else None
    return {
        "project": project,
        "deployment": route.name,
        "kind": "llm",
        "request_id": outcome.request_id,
        "at": time.time() - (outcome.latency_ms or 0) / 1000,
        "caller": caller,
        "endpoint": outcome.kind,
        "model": prepared.model,
        "model_version": int(version) if str(version or "").isdigit() else None,
        "prompt": _prompt(prepared),
        "messages": body.get("messages") if prepared.kind == "chat" else body.get("prompt"),
        "sampling": {k: body[k] for k in SAMPLING if body.get(k) is not None},
        "engine": route.engine,
        "retention_days": route.retention_days,
        "cache": {
            "decision": prepared.cache,
            "entry": outcome.cache_entry,
            "similarity": outcome.cache_similarity,
            "matched": lookup.matched if lookup else None,
            "refused": lookup.rejected if lookup else [],
            "threshold": prepared.namespace.threshold if prepared.namespace else None,
        },
        "redacted": prepared.redacted,
        "output": {"text": outcome.text, "finish_reason": outcome.finish} if outcome.ok else None,
        "error": (error or {}).get("message") if error else None,
        "status": "ok" if outcome.ok else ("cancelled" if outcome.status == "cancelled" else "error"),
        "fallback": outcome.fallback,
        "usage": {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "tokens_saved": outcome.tokens_saved,
        },
        "latency_ms": outcome.latency_ms,
        "ttft_ms": outcome.ttft_ms,
    }


def _prompt(prepared: Prepared) -> dict[str, Any] | None:
    prompt = prepared.prompt
    if prompt is None:
        return None
    return {
        "name": prompt.name,
        "version": prompt.version,
        "reference": prompt.reference,
        "arm": prompt.arm,
        "variables": prepared.variables,
    }


def replay(settings: Any, project: str, record: dict[str, Any]) -> dict[str, Any]:
    """Answer the recorded messages again on the recorded deployment (blocking; no cache, no
    fallback), compare the text, and re-render the recorded prompt version."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    from kosmos.deployment.rollouts import app_name
    from kosmos.platform.errors import NotFound
    from kosmos.platform.ray_cluster import connect

    endpoint = record.get("endpoint") or "chat"
    body = {"model": record["model"], **(record.get("sampling") or {})}
    body["messages" if endpoint == "chat" else "prompt"] = record["messages"]
    connect(settings)
    try:
        handle = serve.get_app_handle(app_name(project, record["deployment"]))
    except RayServeException:
        raise NotFound(
            f"LLM deployment {record['deployment']!r} is not running: nothing to replay on"
        ) from None
    parts: list[str] = []
    final: dict[str, Any] = {}
    for item in handle.options(stream=True).generate.remote(body, endpoint):
        if "usage" in item or "error" in item:
            final = item
            break
        if item.get("choices"):
            choice = item["choices"][0]
            parts.append(
                (choice.get("delta") or {}).get("content") or "" if endpoint == "chat" else choice["text"]
            )
    text = "".join(parts)
    recorded = (record.get("output") or {}).get("text")
    greedy = (record.get("sampling") or {}).get("temperature") == 0 or "seed" in (
        record.get("sampling") or {}
    )
    return {
        "request_id": record["request_id"],
        "kind": "llm",
        "model": record["model"],
        "model_version": record.get("model_version"),
        "replayed_version": final.get("model_version"),
        "deterministic": greedy,
        "recorded": recorded,
        "replayed": text,
        "exact": text == recorded,
        "error": (final.get("error") or {}).get("error", {}).get("message") if "error" in final else None,
        "cache": (record.get("cache") or {}).get("decision"),
        "prompt": _rerender(settings, project, record),
    }


def _rerender(settings: Any, project: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded prompt version rendered again from the registry, against what the model got."""
    from kosmos.genai.prompts import PromptRegistry

    prompt = record.get("prompt")
    if not prompt:
        return None
    try:
        resolved = PromptRegistry(settings.mlflow_tracking_uri).resolve(
            project, f"prompts:/{prompt['name']}/{prompt['version']}", record.get("caller") or ""
        )
        rendered = resolved.render(prompt.get("variables") or {})
    except Exception as exc:  # a deleted version or a registry that does not answer
        return {"version": prompt["version"], "same": None, "error": f"{type(exc).__name__}: {exc}"}
    messages = record.get("messages")
    if isinstance(rendered, str):
        head = [{"role": "system", "content": rendered}] if isinstance(messages, list) else rendered
    else:
        head = rendered
    if isinstance(messages, list) and isinstance(head, list):
        same = messages[: len(head)] == head
    else:
        same = isinstance(messages, str) and isinstance(head, str) and messages.startswith(head)
    return {"name": prompt["name"], "version": prompt["version"], "same": same}
