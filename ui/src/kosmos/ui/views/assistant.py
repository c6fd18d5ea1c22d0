"""The assistant: answers from the docs (cited) and the project's live data."""

from __future__ import annotations

from typing import Any

import streamlit as st

from kosmos.genai import sdk
from kosmos.ui.common import client, page, project

EXAMPLES = (
    "How do I deploy a model with a canary?",
    "Which deployments are degraded?",
    "What is the champion model's ROC-AUC?",
)


def show(reply: dict[str, Any]) -> None:
    """The model's words, then what they rest on: live facts and the cited passages."""
    model = reply["model"]
    if reply["answer"]:
        st.markdown(reply["answer"])
        st.caption(
            f"{model['name']} · cache {model.get('cache')} · prompt {model.get('prompt') or 'built in'} · "
            "the facts and sources below are what the answer rests on"
        )
    elif model.get("withheld"):
        st.caption(f"The model's wording was withheld ({model['withheld']}). What the facts say:")
    else:
        st.caption(f"No model answer ({model.get('error', 'unavailable')}); here is what I found.")
    for fact in reply["facts"]:
        st.info(fact["summary"])
    if reply["sources"]:
        with st.expander(f"Sources ({len(reply['sources'])})", expanded=not reply["answer"]):
            for source in reply["sources"]:
                st.markdown(f"**[{source['n']}] {source['title']}** · `{source['citation']}`")
                st.caption(source["text"][:600])


@page
def render() -> None:
    st.title("Assistant")
    st.caption("Ask how to use Kosmos, or about this project. Answers cite the docs they come from.")
    history: list[dict[str, Any]] = st.session_state.setdefault(f"assistant-{project()}", [])
    for turn in history:
        st.chat_message("user").write(turn["question"])
        with st.chat_message("assistant"):
            show(turn)
    picked = None
    if not history:
        cols = st.columns(len(EXAMPLES))
        for col, example in zip(cols, EXAMPLES, strict=True):
            if col.button(example):
                picked = example
    question = st.chat_input("Ask the assistant") or picked
    if question:
        st.chat_message("user").write(question)
        with st.chat_message("assistant"):
            reply = _streamed(question, history[-1]["question"] if history else None)
        history.append(reply)


def _streamed(question: str, previous: str | None) -> dict[str, Any]:
    """The facts at once, the model's words as they come, then the answer as it may be shown
    (the streamed words are replaced: a wording that contradicts the facts is retracted)."""
    slot = st.empty()
    with client() as c:
        with st.spinner("Reading the docs and your project ..."):
            events = sdk.ask_assistant_stream(project(), question, previous=previous, client=c)
            found = next(events)
        with slot.container():
            words = st.empty()
            for fact in found["facts"]:
                st.info(fact["summary"])
        text, done = "", {"answer": None, "model": {"name": "", "error": "the answer stopped"}}
        for event in events:
            if event["type"] == "delta":
                text += event["text"]
                words.markdown(text + " ▌")
            elif event["type"] == "done":
                done = event
    reply = {**found, "answer": done["answer"], "model": done["model"]}
    with slot.container():
        show(reply)
    return reply
