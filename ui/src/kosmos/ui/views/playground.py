"""LLM playground: chat with any endpoint of the project, streamed, through the gateway."""

from __future__ import annotations

import streamlit as st

from kosmos.genai import sdk
from kosmos.platform import KosmosClient
from kosmos.ui.common import client, page, project


def llm_models(c: KosmosClient) -> list[str]:
    """The project's chat models: its LLM deployments and gateway routes."""
    models = sdk.openai_client(project(), client=c).models.list().data
    return [m.id for m in models if m.owned_by != "kosmos"]  # not the embedder


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
            stream = sdk.openai_client(project(), client=c).chat.completions.create(
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
