"""The assistant: retrieved doc passages and live facts, worded by an LLM through the gateway.

The passages and facts are the answer; the model only summarises them. So the reply
always carries them (with citations), and a small or absent model leaves a useful
answer: ``summary`` is built from them alone. A model answer that names a number or an
identifier the facts and sources do not hold is withheld (``model.withheld`` says why;
``kosmos.genai.assistant.grounding``). The model call is an ordinary gateway
call in the caller's project, with the caller's token: limits, PII redaction, the
prompt registry (``assistant@production`` when the project registered it), the
semantic cache and tracing all apply.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool

from kosmos.genai.assistant import grounding, tools
from kosmos.genai.assistant.docs_index import Passage, default_docs_dir, docs_index
from kosmos.platform.api.deps import Call
from kosmos.platform.db.models import Role
from kosmos.platform.errors import InvalidInput, NotFound

MAX_QUESTION_CHARS = 2000
SOURCE_CHARS = 600
"""Of each passage, what the model reads: a small CPU model's prompt stays short and fast."""
BUILT_IN_PROMPT = (
    "You are the assistant of Kosmos, an ML and GenAI platform. Answer the user's question in at "
    "most four sentences, using only the facts and sources below, and cite sources by number like "
    "[1]. If they do not answer the question, say so.\n\nFacts:\n{{facts}}\n\nSources:\n{{sources}}"
)
_OTHER_PROJECT = re.compile(r"(?:\b(\w+)\s+)?\bproject\s+[`'\"]?([a-z0-9][a-z0-9_-]{0,62})", re.I)
_DETERMINERS = {"this", "the", "my", "our", "your", "current", "that", "a", "each", "every", "which"}
"""Before "project", these make the word after it a verb ("does this project define"), not a name."""


def _encoder(call: Call) -> Any:
    from kosmos.genai.embeddings import local_encoder

    return local_encoder(call.settings.home / "model-cache" / "embeddings")


def _passages(call: Call, question: str) -> list[tuple[Passage, float]]:
    settings = call.settings.assistant
    folder = settings.docs_dir or default_docs_dir()
    index = docs_index(folder, _encoder(call), call.settings.home / "model-cache" / "embeddings")
    return index.search(question, settings.passages)


def _named_project(text: str) -> str | None:
    """The project a question names ("of project secret"), if any."""
    for before, name in _OTHER_PROJECT.findall(text):
        if before.lower() not in _DETERMINERS:
            return name.lower()
    return None


def _facts(call: Call, project: str, question: str, previous: str | None) -> tuple[str, list[dict[str, Any]]]:
    """Which project the question is about (the caller must see it) and the tools' results; a
    follow-up keeps the project and the lookups of ``previous``."""
    named = _named_project(question) or (_named_project(previous) if previous else None)
    target = named or project
    with call.tx() as ctx:
        ctx.project(project, Role.viewer)
        if target != project:
            try:
                ctx.project(target, Role.viewer)
            except NotFound:
                raise NotFound(
                    f"project {target!r} not found, or you have no role in it: the assistant only "
                    "shows projects your token may see"
                ) from None
        return target, tools.run(ctx, call.settings, target, tools.pick(question, _encoder(call), previous))


def _summary(facts: list[dict[str, Any]], passages: list[tuple[Passage, float]]) -> str:
    parts = [f["summary"] for f in facts]
    if passages:
        parts.append(
            "From the docs: "
            + "; ".join(f"[{n}] {p.title} ({p.citation})" for n, (p, _) in enumerate(passages, 1))
        )
    return "\n\n".join(parts)


async def _prepare(call: Call, project: str, question: str, previous: str | None) -> dict[str, Any]:
    """Everything but the model's words: the project, facts, passages, and the gateway request."""
    question = question.strip()  # the route's schema bounds its length
    if not question:
        raise InvalidInput.field("question", "is empty")
    target, facts = await run_in_threadpool(_facts, call, project, question, (previous or "").strip() or None)
    passages = await run_in_threadpool(_passages, call, question)
    sources = "\n\n".join(f"[{n}] {p.title}\n{p.text[:SOURCE_CHARS]}" for n, (p, _) in enumerate(passages, 1))
    fact_text = "\n".join(f["summary"] for f in facts) or "(none needed)"
    settings = call.settings.assistant
    variables = {"facts": fact_text, "sources": sources}
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": settings.max_tokens,
        "temperature": 0,
    }
    if settings.frequency_penalty:
        body["frequency_penalty"] = settings.frequency_penalty
    if await run_in_threadpool(_has_prompt, call, project, settings.prompt):
        body["kosmos"] = {"prompt": f"prompts:/{settings.prompt}@production", "variables": variables}
    else:
        system = BUILT_IN_PROMPT.replace("{{facts}}", fact_text).replace("{{sources}}", sources)
        body["messages"].insert(0, {"role": "system", "content": system})
    reply = {
        "question": question,
        "project": target,
        "summary": _summary(facts, passages),
        "facts": facts,
        "sources": [
            {"n": n, "title": p.title, "citation": p.citation, "text": p.text, "score": round(score, 3)}
            for n, (p, score) in enumerate(passages, 1)
        ],
    }
    return {"reply": reply, "body": body, "grounds": "\n".join((fact_text, sources, question))}


def _worded(outcome: Any, prepared: dict[str, Any], name: str) -> tuple[str | None, dict[str, Any]]:
    """The model's answer as shown (None when withheld or failed) and what to say about it: withheld
    when it names what no fact or source says, gives a state the facts do not, answers a lookup
    without any of its results, or loops (``kosmos.genai.assistant.grounding``)."""
    model: dict[str, Any] = {"name": name, "status": 200 if outcome.ok else outcome.http_status}
    if not outcome.ok:
        model["error"] = ((outcome.error or {}).get("error") or {}).get("message") or str(outcome.error)[:300]
        return None, model
    answer = outcome.text.strip()
    model |= {"cache": outcome.cache, "prompt": outcome.prompt_label, "request_id": outcome.request_id}
    facts, question = prepared["reply"]["facts"], prepared["reply"]["question"]
    unsaid = grounding.ungrounded(answer, prepared["grounds"])
    contradicted = grounding.contradicted(answer, facts)
    why = (  # the facts are the answer: wording that contradicts them is not shown as is
        f"it named {', '.join(unsaid[:3])}, which no fact or source says"
        if unsaid
        else f"it said {', '.join(contradicted[:3])}, which the facts contradict"
        if contradicted
        else grounding.degenerate(answer)
        or (
            None
            if grounding.restates(answer, facts, question)
            else "it gave none of the facts it was asked for"
        )
    )
    if why:
        model["withheld"] = why
        return None, model
    return answer, model


async def ask(call: Call, project: str, question: str, previous: str | None = None) -> dict[str, Any]:
    """Answer ``question`` for the caller in ``project``: passages, facts, and the model's words
    (``previous``: the question asked just before, for a follow-up)."""
    from kosmos.genai import chat

    prepared = await _prepare(call, project, question, previous)
    outcome = await _complete(call, project, prepared["body"])
    assert isinstance(outcome, chat.ChatOutcome)  # the body does not stream
    answer, model = _worded(outcome, prepared, call.settings.assistant.model)
    return {**prepared["reply"], "answer": answer, "model": model}


async def ask_stream(
    call: Call, project: str, question: str, previous: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The same answer as events: ``facts`` first (the project, facts, summary and sources, at
    once), then ``delta`` events with the model's words as they come, then ``done`` with the
    answer as it may be shown: when the wording turns out to contradict the facts, ``done``
    withholds it (``answer`` is None, ``model.withheld`` says why) and the client retracts it."""
    prepared = await _prepare(call, project, question, previous)  # errors here are the route's 4xx
    return _events(call, project, prepared)


async def _events(call: Call, project: str, prepared: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    from kosmos.genai import chat

    yield {"type": "facts", **prepared["reply"]}
    body = {**prepared["body"], "stream": True}
    result = await _complete(call, project, body)
    if isinstance(result, chat.ChatStream):
        chunks = result.chunks()
        try:
            async for chunk in chunks:
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield {"type": "delta", "text": text}
        finally:
            await chunks.aclose()
        outcome = result.outcome
    else:
        outcome = result
    answer, model = _worded(outcome, prepared, call.settings.assistant.model)
    yield {"type": "done", "answer": answer, "model": model}


async def _complete(call: Call, project: str, body: dict[str, Any]) -> Any:
    """The gateway call; again without the penalty when the model's engine has none (transformers
    answers 400 ``unsupported_parameter`` rather than ignoring it)."""
    from kosmos.genai import chat
    from kosmos.genai.api import gateway_of

    result = await chat.complete(call, gateway_of(call), project, body, "chat")
    refused = isinstance(result, chat.ChatOutcome) and result.http_status == 400
    if refused and (result.error or {}).get("error", {}).get("code") == "unsupported_parameter":
        body = {k: v for k, v in body.items() if not k.endswith("_penalty")}
        result = await chat.complete(call, gateway_of(call), project, body, "chat")
    return result


def _has_prompt(call: Call, project: str, name: str) -> bool:
    from kosmos.genai.api import gateway_of

    try:
        gateway_of(call).prompts.resolve(project, f"prompts:/{name}@production", "")
        return True
    except NotFound:
        return False
