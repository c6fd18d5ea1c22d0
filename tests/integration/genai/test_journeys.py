"""The LLM application developer's journey, with least-privilege tokens made through the API.

The admin token only creates the people and their project-scoped tokens: a developer who
writes a prompt and calls the model through the official openai client on the data plane, a
maintainer who puts the prompt into production, a viewer who reads usage and decisions.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from kosmos.genai import sdk
from kosmos.platform import KosmosClient
from kosmos.platform.errors import Forbidden, NotFound

pytestmark = pytest.mark.timeout(600)
LLM = "chat"


def _people(env: dict[str, Any]) -> dict[str, KosmosClient]:
    suffix = uuid.uuid4().hex[:6]  # the package's platform is shared: names of this test's own
    tokens = {}
    with KosmosClient(url=env["url"], token=env["admin"]) as admin:
        for user, role in [("lia", "developer"), ("mo", "maintainer"), ("vera", "viewer")]:
            name = f"{user}-{suffix}"
            admin.post("/users", {"name": name})
            admin.put(f"/projects/demo/members/{name}", {"role": role})
            tokens[user] = admin.post("/tokens", {"name": name, "user": name, "project": "demo"})["token"]
    return {user: KosmosClient(url=env["url"], token=token) for user, token in tokens.items()}


def _requests(viewer: KosmosClient) -> int:
    rows = viewer.get("/projects/demo/llm/usage", hours=1, deployment=LLM)
    return rows[0]["requests"] if rows else 0


def test_an_llm_application_developer_prompts_chats_skips_the_cache_and_reads_usage(llm_env) -> None:
    people = _people(llm_env)
    lia, mo, vera = people["lia"], people["mo"], people["vera"]
    prompt = f"faq_{uuid.uuid4().hex[:6]}"
    first = sdk.register_prompt(
        "demo", prompt, "You answer for {{company}}. One short sentence.", "first", client=lia
    )
    assert first["version"] == 1 and first["variables"] == ["company"]
    with pytest.raises(Forbidden):  # production is the maintainer's call
        sdk.set_prompt_alias("demo", prompt, "production", 1, client=lia)
    sdk.set_prompt_alias("demo", prompt, "production", 1, client=mo)

    before = _requests(vera)
    client = sdk.openai_client("demo", client=lia)
    assert str(client.base_url).startswith(lia.dataplane_url)  # the data plane, not the control plane
    use = {"prompt": f"prompts:/{prompt}@production", "variables": {"company": "Kosmos Bank"}}
    question = [{"role": "user", "content": "How do I reset my card PIN?"}]
    outcomes, ids = [], []
    for headers in ({}, {}, {"X-Kosmos-Cache": "skip"}):
        raw = client.chat.completions.with_raw_response.create(
            model=LLM, messages=question, temperature=0, max_tokens=12,
            extra_body={"kosmos": use}, extra_headers=headers,
        )  # fmt: skip
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-kosmos-prompt"] == f"{prompt}/1"
        outcomes.append(raw.headers["x-kosmos-cache"])
        ids.append(raw.headers["x-request-id"])
    assert outcomes == ["miss", "hit", "skip"]

    # the viewer reads what happened: usage (written in batches, off the request's path) and the
    # decision record of the first call, naming the prompt version it used
    deadline = time.monotonic() + 15
    while _requests(vera) < before + 3:
        assert time.monotonic() < deadline, vera.get("/projects/demo/llm/usage", hours=1)
        time.sleep(0.5)
    while True:  # decision records are written off the request's path too, once a second
        try:
            record = vera.get(f"/projects/demo/decisions/{ids[0]}")["record"]
            break
        except NotFound:
            assert time.monotonic() < deadline + 15, f"no decision record for {ids[0]}"
            time.sleep(0.5)
    assert record["prompt"]["reference"] == f"{prompt}@production" and record["prompt"]["version"] == 1

    # ... and changes nothing: a write is a 403 before its body is read
    response = httpx.post(
        f"{llm_env['url']}/api/v1/projects/demo/prompts",
        headers={"Authorization": f"Bearer {vera.token}"},
        content=b"\x00not json",
    )
    assert response.status_code == 403, response.text
    for c in people.values():
        c.close()
