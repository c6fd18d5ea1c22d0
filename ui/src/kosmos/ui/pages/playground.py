"""LLM playground: chat with any endpoint of the project, streamed, through the gateway."""

from __future__ import annotations

from typing import Any

import streamlit as st
from openai import OpenAI

from kosmos.genai import sdk
from kosmos.platform import KosmosClient
from kosmos.ui.common import client, page, project


def _openai(c: KosmosClient) -> OpenAI:
    return OpenAI(
        base_url=sdk.openai_base_url(project(), client=c), api_key=c.token, max_retries=0, timeout=300
    )


def llm_models(c: KosmosClient) -> list[str]:
    """The project's chat models: its LLM deployments and gateway routes."""
    return [m.id for m in _openai(c).models.list().data if m.owned_by != "kosmos"]  # not the embedder


def ask(
    c: KosmosClient,
    model: str,
    messages: list[dict[str, Any]],
    prompt: str | None = None,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One gateway call; the text with what the gateway did (cache, prompt, request id)."""
    extra = {"kosmos": {"prompt": prompt, "variables": variables or {}}} if prompt else None
    raw = _openai(c).chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=96, temperature=0, extra_body=extra
    )
    return {
        "text": raw.parse().choices[0].message.content,
        "cache": raw.headers.get("x-kosmos-cache"),
        "prompt": raw.headers.get("x-kosmos-prompt"),
        "request_id": raw.headers.get("x-request-id"),
    }


@page
def render() -> None:
    st.title("LLM playground")
    with client() as c:
        models = llm_models(c)
        if not models:
            st.info("No LLM endpoint in this project: `kosmos deploy create NAME --llm --model MODEL`.")
            return
        cols = st.columns([2, 1, 1])
        model = cols[0].selectbox("Endpoint", models)
        max_tokens = cols[1].number_input("Max tokens", 8, 1024, 96)
        temperature = cols[2].slider("Temperature", 0.0, 1.5, 0.0, 0.1)
        history: list[dict[str, str]] = st.session_state.setdefault(f"chat-{project()}-{model}", [])
        if st.button("New chat", disabled=not history):
            history.clear()
        for message in history:
            st.chat_message(message["role"]).write(message["content"])
        question = st.chat_input("Message the model")
        if question:
            history.append({"role": "user", "content": question})
            st.chat_message("user").write(question)
            stream = _openai(c).chat.completions.create(
                model=model,
                messages=history,
                max_tokens=int(max_tokens),
                temperature=temperature,
                stream=True,
            )
            pieces = (chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            answer = st.chat_message("assistant").write_stream(pieces)
            history.append(
                {"role": "assistant", "content": answer if isinstance(answer, str) else str(answer)}
            )
