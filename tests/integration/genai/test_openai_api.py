"""The default LLM served on Ray Serve, called with the official openai client (streaming and not)."""

from __future__ import annotations

import json
import math
import time

import httpx
import openai
import pytest
from openai import OpenAI

from kosmos.genai.embeddings import EMBEDDING_MODEL

pytestmark = pytest.mark.timeout(600)
LLM = "chat"  # the deployment conftest.py creates
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _client(env: dict, token: str | None = None, project: str = "demo") -> OpenAI:
    base = f"{env['url']}/api/v1/projects/{project}/openai/v1"
    return OpenAI(base_url=base, api_key=token or env["admin"], max_retries=0, timeout=120)


def test_models_lists_the_llm_deployment_and_the_embedder(llm_env) -> None:
    ids = {m.id for m in _client(llm_env).models.list()}
    assert {LLM, EMBEDDING_MODEL} <= ids
    info = llm_env["state"]["details"]["versions"]
    first = next(iter(info.values()))
    assert first["engine"] == "vllm" and first["runtime"] == "vllm-cpu"
    assert first["engine_args"]["enforce_eager"] is True and first["engine_args"]["max_model_len"] == 1024


def test_chat_completion_answers_with_usage(llm_env) -> None:
    answer = _client(llm_env).chat.completions.create(
        model=LLM, messages=QUESTION, temperature=0, max_tokens=16
    )
    assert "Paris" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason in {"stop", "length"}
    assert answer.usage.prompt_tokens > 5 and 0 < answer.usage.completion_tokens <= 16
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_streaming_chat_yields_chunks_and_a_usage_chunk(llm_env) -> None:
    stream = _client(llm_env).chat.completions.create(
        model=LLM,
        messages=QUESTION,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Kosmos-Cache": "skip"},  # from the model, not a cached replay
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 2  # really streamed
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    plain = _client(llm_env).chat.completions.create(
        model=LLM, messages=QUESTION, temperature=0, max_tokens=16
    )
    assert text == plain.choices[0].message.content  # greedy: the same text either way


def test_completions_stop_sequences_and_seeds(llm_env) -> None:
    client = _client(llm_env)
    done = client.completions.create(model=LLM, prompt="One, two, three,", temperature=0, max_tokens=12)
    assert done.choices[0].text and done.usage.completion_tokens > 0
    stopped = client.chat.completions.create(
        model=LLM, messages=QUESTION, temperature=0, max_tokens=16, stop=["Paris"]
    )
    assert "Paris" not in stopped.choices[0].message.content
    assert stopped.choices[0].finish_reason == "stop"
    runs = [
        client.chat.completions.create(model=LLM, messages=QUESTION, temperature=1.0, max_tokens=12, seed=11)
        for _ in range(2)
    ]
    assert runs[0].choices[0].message.content == runs[1].choices[0].message.content
    # penalties reach vLLM: the same greedy answer changes (ignored, it would be the same text)
    loop = [{"role": "user", "content": "Write the word card twenty times."}]
    plain, penalized = (
        client.chat.completions.create(
            model=LLM, messages=loop, temperature=0, max_tokens=24, frequency_penalty=penalty
        )
        .choices[0]
        .message.content.lower()
        for penalty in (0.0, 1.5)
    )
    assert plain != penalized, plain


def test_embeddings_are_unit_vectors_that_put_similar_texts_close(llm_env) -> None:
    result = _client(llm_env).embeddings.create(
        model=EMBEDDING_MODEL, input=["card fraud", "a stolen credit card", "the weather is sunny"]
    )
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    assert result.usage.prompt_tokens > 0


def test_bad_requests_get_openai_shaped_errors(llm_env) -> None:
    client = _client(llm_env)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-5", messages=QUESTION)
    assert missing.value.code == "model_not_found" and LLM in missing.value.message
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=LLM, messages=QUESTION, max_tokens=0)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=LLM, messages=QUESTION, max_tokens=10**9)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=LLM, messages=[{"role": "user", "content": "fraud " * 2000}])
    assert too_long.value.code == "context_length_exceeded" and "1024 tokens" in too_long.value.message
    with pytest.raises(openai.BadRequestError, match="frequency_penalty"):
        client.chat.completions.create(model=LLM, messages=QUESTION, frequency_penalty=3)
    with pytest.raises(openai.BadRequestError, match="role"):
        client.chat.completions.create(model=LLM, messages=[{"role": "alien", "content": "hi"}])
    response = httpx.post(
        f"{llm_env['url']}/api/v1/projects/demo/openai/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {llm_env['admin']}"},
    )
    assert 400 <= response.status_code < 500


def test_another_projects_token_cannot_reach_the_model(llm_env) -> None:
    with pytest.raises(openai.NotFoundError):
        _client(llm_env, token=llm_env["other"]).chat.completions.create(model=LLM, messages=QUESTION)
    assert {m.id for m in _client(llm_env, llm_env["other"], project="other").models.list()} == {
        EMBEDDING_MODEL
    }


def test_a_client_that_leaves_mid_stream_frees_its_slot_and_usage_is_metered(llm_env) -> None:
    client = _client(llm_env)
    with client.chat.completions.create(
        model=LLM, messages=[{"role": "user", "content": "Write a long story."}], max_tokens=900, stream=True
    ) as stream:
        for i, _ in enumerate(stream):
            if i == 2:
                break  # closes the connection
    answer = client.chat.completions.create(model=LLM, messages=QUESTION, temperature=0, max_tokens=8)
    assert answer.choices[0].message.content  # the endpoint kept serving
    deadline = time.monotonic() + 30
    while True:  # the cancelled call is recorded once the server notices the disconnect
        usage = httpx.get(
            f"{llm_env['url']}/api/v1/projects/demo/llm/usage",
            headers={"Authorization": f"Bearer {llm_env['admin']}"},
        ).json()
        chat = next(u for u in usage if u["deployment"] == LLM)
        if chat["cancelled"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert chat["requests"] >= 9 and chat["cancelled"] == 1
    assert chat["completion_tokens"] > 0 and chat["prompt_tokens"] > 0
    assert chat["ttft_p50_ms"] > 0 and chat["latency_p99_ms"] >= chat["latency_p50_ms"]


def test_the_cli_creates_an_llm_deployment_and_refuses_a_bad_engine_spec(llm_env, monkeypatch) -> None:
    from typer.testing import CliRunner

    from kosmos.platform.cli.main import app

    monkeypatch.setenv("KOSMOS_CLIENT__URL", llm_env["url"])
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", llm_env["admin"])
    runner = CliRunner()
    model = ["-m", "smollm2-135m-instruct", "-p", "demo", "--llm"]
    created = runner.invoke(
        app, ["deploy", "create", "chat-cli", *model, "--engine", "transformers", "-o", "json"]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["spec"]["llm"] == {"engine": "transformers"}
    refused = runner.invoke(app, ["deploy", "create", "chat-bad", *model, "--engine", "tensorrt"])
    assert refused.exit_code == 2 and "engine" in refused.output
    assert runner.invoke(app, ["deploy", "delete", "chat-cli", "-p", "demo"]).exit_code == 0


def test_a_deployment_that_cannot_serve_answers_503_with_its_status(llm_env) -> None:
    from kosmos.deployment import sdk as deployments
    from kosmos.platform import KosmosClient

    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        deployments.create(
            "demo", "chat-gpu", "smollm2-135m-instruct", llm={"engine": "vllm", "num_gpus": 1}, client=c
        )
        deadline = time.monotonic() + 60
        while (state := deployments.status("demo", "chat-gpu", client=c))["status"] != "failed":
            assert time.monotonic() < deadline, state
            time.sleep(0.5)
        assert "num_gpus is 1 and the cluster has no GPU" in state["reason"]
        with pytest.raises(openai.InternalServerError, match="not serving yet") as refused:
            _client(llm_env).chat.completions.create(model="chat-gpu", messages=QUESTION)
        assert refused.value.status_code == 503 and "has no GPU" in refused.value.message
        deployments.delete("demo", "chat-gpu", client=c)
