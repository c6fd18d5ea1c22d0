"""Decision records of LLM calls through the gateway, on the live vLLM engine: explain and replay."""

from __future__ import annotations

import time
from typing import Any

import pytest
from openai import OpenAI

from kosmos.deployment import sdk as decisions
from kosmos.genai import sdk
from kosmos.platform import KosmosClient
from kosmos.platform.errors import NotFound

pytestmark = pytest.mark.timeout(600)
LLM = "chat"


def _explained(c: KosmosClient, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15  # records are written off the request's path, once a second
    while True:
        try:
            return decisions.explain("demo", request_id, client=c)
        except NotFound:
            assert time.monotonic() < deadline, f"no decision record for {request_id}"
            time.sleep(0.3)


def test_an_llm_call_is_recorded_explained_and_replayed_word_for_word(llm_env) -> None:
    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        version = sdk.register_prompt(
            "demo", "decider", "You answer for {{company}}. Be brief.", "v1", client=c
        )
    client = OpenAI(
        base_url=f"{llm_env['url']}/api/v1/projects/demo/openai/v1", api_key=llm_env["admin"], max_retries=0
    )
    question = "I am jane.doe@example.com. Which river runs through Rome?"  # asked nowhere else: a miss
    raw = client.chat.completions.with_raw_response.create(
        model=LLM,
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=12,
        extra_body={"kosmos": {"prompt": "prompts:/decider/1", "variables": {"company": "Kosmos Bank"}}},
    )
    answer = raw.parse().choices[0].message.content
    request_id = raw.headers["x-request-id"]
    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        found = _explained(c, request_id)
        record = found["record"]
        assert record["kind"] == "llm" and record["deployment"] == LLM and record["caller"] == "admin"
        assert record["prompt"]["name"] == "decider" and record["prompt"]["version"] == version["version"]
        assert record["prompt"]["variables"] == {"company": "Kosmos Bank"}
        system, user = record["messages"]
        assert system == {"role": "system", "content": "You answer for Kosmos Bank. Be brief."}
        assert "[EMAIL]" in user["content"] and "jane.doe" not in str(
            record
        )  # redacted before it was written
        assert record["sampling"] == {"temperature": 0, "max_tokens": 12}
        assert record["engine"]["engine"] == "vllm" and record["model_version"] is not None
        assert record["cache"]["decision"] == "miss" and record["output"]["text"] == answer
        assert record["usage"]["completion_tokens"] > 0 and record["latency_ms"] > 0
        replayed = decisions.replay("demo", request_id, client=c)
        assert replayed["deterministic"] is True and replayed["exact"] is True, replayed
        assert replayed["replayed"] == answer and replayed["prompt"]["same"] is True
    with KosmosClient(url=llm_env["url"], token=llm_env["other"]) as c, pytest.raises(NotFound):
        decisions.explain("other", request_id, client=c)  # another project's member sees nothing
