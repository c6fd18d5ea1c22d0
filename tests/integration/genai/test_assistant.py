"""The assistant on a live platform: cited doc passages, live facts, the gateway, and scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kosmos.genai import sdk
from kosmos.platform.client import KosmosClient
from kosmos.platform.errors import InvalidInput, NotFound

LLM = "chat"  # the fixture's LLM deployment; the assistant asks for `assistant-llm`, routed to it


@pytest.fixture
def kc(llm_env) -> Iterator[KosmosClient]:
    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        sdk.set_gateway_policy("demo", {"routes": {"assistant-llm": [LLM]}}, client=c)
        yield c
        c.put("/projects/demo/gateway", {})


def test_a_how_to_question_is_answered_from_the_docs_with_citations(kc) -> None:
    question = "How do I deploy a model with a canary rollout?"
    reply = sdk.ask_assistant("demo", question, client=kc)
    assert reply["facts"] == []  # a how-to question needs no live data
    citations = [s["citation"] for s in reply["sources"]]
    assert any(c.startswith("docs/deployment.md#") for c in citations), citations
    assert any("canary" in s["text"].lower() for s in reply["sources"])
    assert all(s["title"] and s["text"] for s in reply["sources"])
    assert "docs/deployment.md" in reply["summary"]  # useful even when the model says little
    # the model worded it through the gateway: the built-in prompt, then the cache
    assert reply["model"]["status"] == 200 and reply["model"]["cache"] == "miss", reply["model"]
    # worded by the model, or withheld for naming what the sources do not say (grounding.py)
    assert reply["answer"] or "which no fact or source says" in reply["model"]["withheld"], reply["model"]
    again = sdk.ask_assistant("demo", question, client=kc)
    assert again["model"]["cache"] == "hit" and again["answer"] == reply["answer"]


def test_live_facts_come_from_the_project_the_caller_can_see(kc, llm_env) -> None:
    reply = sdk.ask_assistant("demo", "Which deployments of project demo are degraded?", client=kc)
    [facts] = reply["facts"]
    assert facts["tool"] == "deployments"
    assert {d["name"]: d["status"] for d in facts["data"]}[LLM] == "healthy"
    assert "No deployment of demo is degraded or failed." in facts["summary"]
    models = sdk.ask_assistant("demo", "What is the champion model's version and metrics?", client=kc)
    assert [f["tool"] for f in models["facts"]] == ["models"]
    follow_up = sdk.ask_assistant(
        "demo", "Is that good?", previous="What is the champion model's version and metrics?", client=kc
    )
    assert [f["tool"] for f in follow_up["facts"]] == ["models"]  # the question before gave it context
    champion = next(r for r in models["facts"][0]["data"] if r["alias"] == "champion")
    trained = champion["trained"]  # how it was trained: the version's run and what it was given
    assert trained["run_id"] and f"trained in run {trained['run']}" in models["facts"][0]["summary"]

    with KosmosClient(url=llm_env["url"], token=llm_env["other"]) as otto:  # a role in `other` only
        with pytest.raises(NotFound):
            sdk.ask_assistant("demo", "Which deployments are degraded?", client=otto)
        with pytest.raises(NotFound, match="only shows projects your token may see"):
            sdk.ask_assistant("other", "Which deployments of project demo are degraded?", client=otto)
        own = sdk.ask_assistant("other", "Which deployments are degraded?", client=otto)
        assert own["project"] == "other" and own["facts"][0]["data"] == []
        # `other` has no assistant-llm: the answer is the facts and passages, and says why
        assert own["answer"] is None and own["model"]["status"] == 404, own["model"]
        assert "Project other has no deployments." in own["summary"]


def test_bad_questions_are_refused_clearly(kc) -> None:
    with pytest.raises(InvalidInput, match="question"):
        sdk.ask_assistant("demo", "", client=kc)
    with pytest.raises(InvalidInput, match="question"):
        sdk.ask_assistant("demo", "x" * 2001, client=kc)


def test_the_answer_streams_after_the_facts_and_matches_the_whole_answer(kc, llm_env) -> None:
    question = "How do I register a new version of a dataset?"
    events = list(sdk.ask_assistant_stream("demo", question, client=kc))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "facts" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}, kinds
    assert any(s["citation"].startswith("docs/") for s in events[0]["sources"])
    streamed = "".join(e["text"] for e in events[1:-1])
    done = events[-1]
    assert len(kinds) > 3 and done["model"]["status"] == 200  # the words came in several pieces
    # the same question again, whole: a cache hit with the answer the stream settled on
    again = sdk.ask_assistant("demo", question, client=kc)
    assert again["model"]["cache"] == "hit" and again["answer"] == done["answer"]
    if done["answer"] is not None:  # shown: exactly the words that streamed
        assert done["answer"] == streamed.strip()
    else:  # retracted: the stream showed words the facts do not support
        assert "which no fact or source says" in done["model"]["withheld"]
    with KosmosClient(url=llm_env["url"], token=llm_env["other"]) as otto, pytest.raises(NotFound):
        next(sdk.ask_assistant_stream("demo", "Which deployments are degraded?", client=otto))
