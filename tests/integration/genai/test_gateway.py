"""The gateway in front of the live LLM: semantic cache, PII redaction, prompts from the MLflow
registry, limits, fallback routes, tracing, and project isolation, through real HTTP calls."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import mlflow
import openai
import pytest
from mlflow import MlflowClient
from openai import OpenAI
from sqlalchemy import select

from kosmos.genai import sdk
from kosmos.genai.models_db import CacheEntry, LLMUsage
from kosmos.platform import KosmosClient
from kosmos.platform.db.engine import Database
from kosmos.platform.errors import NotFound

pytestmark = pytest.mark.timeout(600)
LLM = "chat"
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


def _client(env: dict, token: str | None = None, project: str = "demo") -> OpenAI:
    base = f"{env['url']}/api/v1/projects/{project}/openai/v1"
    return OpenAI(base_url=base, api_key=token or env["admin"], max_retries=0, timeout=120)


def _ask(env: dict, messages: list[dict], **kwargs) -> tuple[str, httpx.Headers]:
    raw = _client(env).chat.completions.with_raw_response.create(
        model=kwargs.pop("model", LLM), messages=messages, temperature=kwargs.pop("temperature", 0),
        max_tokens=kwargs.pop("max_tokens", 16), **kwargs,
    )  # fmt: skip
    return raw.parse().choices[0].message.content, raw.headers


@pytest.fixture
def kc(llm_env):
    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        yield c
        c.put("/projects/demo/gateway", {})  # every test leaves the default policy behind


def test_repeats_and_paraphrases_hit_the_cache_and_near_misses_do_not(llm_env, kc) -> None:
    first, h1 = _ask(llm_env, CAPITAL)
    assert h1["x-kosmos-cache"] in ("miss", "hit")  # another test module may have asked it before
    again, h2 = _ask(llm_env, CAPITAL)
    assert h2["x-kosmos-cache"] == "hit" and again == first and "Paris" in again
    paraphrase, h3 = _ask(llm_env, [{"role": "user", "content": "Which city is the capital of France?"}])
    assert h3["x-kosmos-cache"] == "hit" and paraphrase == first
    near, h4 = _ask(llm_env, [{"role": "user", "content": "What is the capital of Germany?"}])
    assert h4["x-kosmos-cache"] == "miss" and "Paris" not in near
    _, skipped = _ask(llm_env, CAPITAL, extra_headers={"X-Kosmos-Cache": "skip"})
    assert skipped["x-kosmos-cache"] == "skip"
    _, sampled = _ask(llm_env, CAPITAL, temperature=0.8)
    assert sampled["x-kosmos-cache"] == "bypass"  # sampled answers vary by design: not cached
    _, longer = _ask(llm_env, CAPITAL, max_tokens=24)
    assert longer["x-kosmos-cache"] == "miss"  # other generation settings, another partition
    stream = _client(llm_env).chat.completions.with_raw_response.create(
        model=LLM, messages=CAPITAL, temperature=0, max_tokens=16, stream=True
    )
    assert stream.headers["x-kosmos-cache"] == "hit"
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices) == first
    stats = _stats(kc, lambda s: s["outcomes"].get("hit", 0) >= 3)  # usage rows land within ~1 s
    assert stats["tokens_saved"] > 0 and 0 < stats["hit_rate"] < 1
    assert stats["hit_latency_p50_ms"] < stats["miss_latency_p50_ms"]
    entry = int(h2["x-kosmos-cache-entry"])
    sdk.flag_cached_answer("demo", entry, "stale", client=kc)
    _, after = _ask(llm_env, CAPITAL)
    assert after["x-kosmos-cache"] == "miss"  # the flagged answer is gone
    assert sdk.cache_stats("demo", client=kc)["flagged"] >= 1


def test_audited_hits_are_answered_again_and_estimate_the_false_hit_rate(llm_env, kc) -> None:
    sdk.set_gateway_policy("demo", {"cache": {"audit_rate": 1}}, client=kc)
    question = [{"role": "user", "content": "Name one primary colour."}]
    first, h1 = _ask(llm_env, question)
    assert h1["x-kosmos-cache"] == "miss"
    started = time.monotonic()
    again, h2 = _ask(llm_env, question)
    # the caller gets the cached answer at once; the model answers again in the background
    assert h2["x-kosmos-cache"] == "hit" and again == first and time.monotonic() - started < 2
    namespace = None
    deadline = time.monotonic() + 60
    while namespace is None:
        spaces = sdk.cache_namespaces("demo", hours=1, client=kc)
        namespace = next((s for s in spaces if s["stats"]["audits"] >= 1 and s["stats"]["hits"]), None)
        assert time.monotonic() < deadline, spaces
        time.sleep(0.5)
    figures = namespace["stats"]
    assert figures["audits_disagreed"] == 0  # greedy decoding: the model says the same again
    # 0 of n disagreed: the interval is Wilson's [0, z^2 / (n + z^2)], not a bare 0%
    z2 = 1.959964**2
    assert figures["false_hit_rate"] == 0
    assert figures["false_hit_interval"] == pytest.approx([0.0, z2 / (figures["audits"] + z2)])
    assert sdk.cache_stats("demo", hours=1, client=kc)["audits"] >= 1
    # the audit's model call is metered on its own row, under the hit's request id, and weighed
    # against what the cache saved; it is not a request of the caller's
    database = Database(llm_env["settings"].database_url)
    deadline = time.monotonic() + 15  # usage rows are written in batches, off the request's path
    try:
        while True:
            with database.transaction() as session:
                query = select(LLMUsage).where(LLMUsage.request_id == h2["x-request-id"])
                rows = [
                    (r.cache, r.status, r.prompt_tokens, r.completion_tokens) for r in session.scalars(query)
                ]
            if len(rows) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        database.dispose()
    assert sorted(r[0] for r in rows) == ["audit", "hit"], rows
    _, status, prompt_tokens, completion_tokens = next(r for r in rows if r[0] == "audit")
    assert status == "ok" and completion_tokens > 0
    spaces = sdk.cache_namespaces("demo", hours=1, client=kc)
    assert sum(s["stats"]["audit_tokens"] for s in spaces) >= prompt_tokens + completion_tokens


def _stats(kc: KosmosClient, until: Callable[[dict], bool]) -> dict:
    """The cache statistics once ``until`` holds (they are read from usage rows, written in batches)."""
    deadline = time.monotonic() + 15
    while not until(stats := sdk.cache_stats("demo", client=kc)):
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)
    return stats


def _usage_row(database: Database, request_id: str) -> LLMUsage | None:
    with database.transaction() as session:
        return session.scalar(
            select(LLMUsage).where(
                LLMUsage.request_id == request_id, LLMUsage.cache.is_distinct_from("audit")
            )
        )


def test_pii_never_reaches_the_model_the_cache_usage_traces_or_logs(llm_env, kc, caplog, capfd) -> None:
    card, email = "4111 1111 1111 1111", "jane.doe@example.com"
    question = f"My card {card} was charged twice, write to {email}. Why?"
    with caplog.at_level("DEBUG"):
        _, headers = _ask(llm_env, [{"role": "user", "content": question}])
    assert headers["x-kosmos-cache"] == "miss"
    database = Database(llm_env["settings"].database_url)
    try:
        with database.transaction() as session:
            entry = session.get(CacheEntry, int(headers["x-kosmos-cache-entry"]))
            assert "[CARD]" in entry.query and "[EMAIL]" in entry.query
            stored = json.dumps([entry.query, entry.answer])
        deadline = time.monotonic() + 15  # usage rows are written off the request's path, in batches
        while (usage := _usage_row(database, headers["x-request-id"])) is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert usage.redacted == 2
    finally:
        database.dispose()
    tracking = llm_env["settings"].mlflow_tracking_uri
    experiment = MlflowClient(tracking).get_experiment_by_name("demo/gateway").experiment_id
    mlflow.set_tracking_uri(tracking)
    deadline = time.monotonic() + 30
    while True:  # traces are exported asynchronously
        mlflow.flush_trace_async_logging()
        traces = mlflow.search_traces(locations=[experiment], return_type="list", max_results=200)
        ours = [
            t
            for t in traces
            if t.data.spans[0].attributes.get("kosmos.request_id") == headers["x-request-id"]
        ]
        if ours or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    span = ours[0].data.spans[0]
    sent = json.dumps(span.inputs)  # what the model was sent
    assert "[CARD]" in sent and "[EMAIL]" in sent
    assert span.attributes["kosmos.cache"] == "miss" and span.attributes["kosmos.redacted"] == {
        "card": 1,
        "email": 1,
    }
    assert span.attributes["kosmos.prompt_tokens"] > 0 and span.attributes["kosmos.latency_ms"] > 0
    out, err = capfd.readouterr()
    for secret in ("4111", email):
        for where in (stored, sent, caplog.text, out, err, json.dumps(ours[0].to_dict())):
            assert secret not in where


def test_a_megabyte_of_adversarial_text_is_refused_before_redaction(llm_env, kc) -> None:
    attack = [{"role": "user", "content": "1." * 500_000}]  # quadratic for an unbounded email pattern
    started = time.perf_counter()
    with pytest.raises(openai.BadRequestError) as refused:
        _ask(llm_env, attack)
    elapsed = time.perf_counter() - started
    assert refused.value.code == "context_length_exceeded", refused.value
    assert elapsed < 0.5, f"{elapsed:.3f} s"  # the JSON parse of 1 MB is most of it


def test_prompts_from_the_mlflow_registry_with_aliases_and_invalidation(llm_env, kc) -> None:
    v1 = sdk.register_prompt(
        "demo", "support", "You are {{company}}'s support agent. Be brief.", "first", client=kc
    )
    v2 = sdk.register_prompt(
        "demo", "support", "You are {{company}}'s support agent. Be friendly.", "tone", client=kc
    )
    assert (v1["version"], v2["version"]) == (1, 2) and v1["variables"] == ["company"]
    sdk.set_prompt_alias("demo", "support", "production", 1, client=kc)
    registry = MlflowClient(llm_env["settings"].mlflow_tracking_uri)
    assert registry.get_prompt_version_by_alias("demo.support", "production").version == 1  # MLflow's own
    assert "-You are {{company}}'s support agent. Be brief." in sdk.diff_prompt(
        "demo", "support", 1, 2, client=kc
    )
    use = {"prompt": "prompts:/support@production", "variables": {"company": "Kosmos Bank"}}
    question = [{"role": "user", "content": "How do I block my card?"}]
    _, h1 = _ask(llm_env, question, extra_body={"kosmos": use})
    _, h2 = _ask(llm_env, question, extra_body={"kosmos": use})
    assert h1["x-kosmos-prompt"] == "support/1" and (h1["x-kosmos-cache"], h2["x-kosmos-cache"]) == (
        "miss",
        "hit",
    )
    _, bare = _ask(llm_env, question)
    assert bare["x-kosmos-cache"] == "miss"  # no system prompt: another partition
    with pytest.raises(openai.BadRequestError, match="missing variables: company"):
        _ask(llm_env, question, extra_body={"kosmos": {"prompt": "prompts:/support@production"}})
    with pytest.raises(openai.BadRequestError, match="unknown variables: tone"):
        _ask(llm_env, question, extra_body={"kosmos": {**use, "variables": {"company": "K", "tone": "x"}}})
    with pytest.raises(openai.NotFoundError, match="support@staging"):
        _ask(llm_env, question, extra_body={"kosmos": {**use, "prompt": "prompts:/support@staging"}})
    moved = sdk.set_prompt_alias("demo", "support", "production", 2, client=kc)
    assert moved["previous"] == 1 and moved["cache_invalidated"] >= 1
    _, h3 = _ask(llm_env, question, extra_body={"kosmos": use})
    assert h3["x-kosmos-prompt"] == "support/2" and h3["x-kosmos-cache"] == "miss"
    assert "support" in [p["name"] for p in sdk.list_prompts("demo", client=kc)]  # others register theirs
    sdk.report_outcome("demo", h3["x-request-id"], "success", client=kc)
    results = {r["version"]: r for r in sdk.prompt_results("demo", "support", client=kc)}
    assert results[2]["successes"] == 1 and results[1]["requests"] == 2


def test_rate_limits_and_token_quotas_answer_429_with_retry_after(llm_env, kc) -> None:
    sdk.set_gateway_policy("demo", {"requests_per_minute": 2}, client=kc)
    statuses = []
    for _ in range(6):  # at most 2 per minute window pass, so 6 quick calls must meet a refusal
        response = httpx.post(
            f"{llm_env['url']}/api/v1/projects/demo/openai/v1/completions",
            json={"model": LLM, "prompt": "Hello", "max_tokens": 1, "temperature": 0},
            headers={"Authorization": f"Bearer {llm_env['admin']}"},
            timeout=60,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert response.json()["error"]["code"] == "rate_limit_exceeded"
            break
    assert statuses[-1] == 429 and statuses.count(200) <= 4
    sdk.set_gateway_policy("demo", {"tokens_per_day": 1}, client=kc)  # earlier tests spent more
    with pytest.raises(openai.RateLimitError, match="token quota of 1 per day"):
        _ask(llm_env, CAPITAL)
    with pytest.raises(Exception, match="requests_per_minute"):
        sdk.set_gateway_policy("demo", {"requests_per_minute": 0}, client=kc)


def test_a_route_falls_back_when_its_first_deployment_cannot_serve(llm_env, kc) -> None:
    from kosmos.deployment import sdk as deployments

    broken = {"engine": "vllm", "num_gpus": 1}  # a GPU engine on a cluster without GPUs
    deployments.create("demo", "chat-broken", "smollm2-135m-instruct", llm=broken, client=kc)
    try:
        deployments.wait(
            "demo", "chat-broken", until=lambda d: d["status"] == "failed", timeout_s=60, client=kc
        )
        sdk.set_gateway_policy("demo", {"routes": {"assistant": ["chat-broken", LLM]}}, client=kc)
        assert "assistant" in {m.id for m in _client(llm_env).models.list()}
        text, headers = _ask(llm_env, CAPITAL, model="assistant")
        assert text and headers["x-kosmos-fallback"] == LLM
    finally:
        deployments.delete("demo", "chat-broken", client=kc)


def test_the_cache_fails_open_when_the_index_is_down(llm_env, kc, monkeypatch) -> None:
    from kosmos.genai.vector_index import IndexUnavailable
    from kosmos.genai.vector_index.memory import MemoryIndex

    def down(*args, **kwargs):
        raise IndexUnavailable("vector index down")

    monkeypatch.setattr(MemoryIndex, "search", down)  # the control plane runs in this process
    text, headers = _ask(llm_env, CAPITAL)
    assert headers["x-kosmos-cache"] == "error" and "Paris" in text  # answered by the model
    _stats(kc, lambda s: s["outcomes"].get("error", 0) >= 1)


def test_cache_and_prompts_are_project_scoped_and_the_cli_works(llm_env, kc, monkeypatch) -> None:
    from typer.testing import CliRunner

    from kosmos.platform.cli.main import app
    from kosmos.platform.settings import get_settings

    _, headers = _ask(llm_env, CAPITAL, extra_headers={"X-Kosmos-Cache": "refresh"})  # always stores
    entry = headers["x-kosmos-cache-entry"]
    with KosmosClient(url=llm_env["url"], token=llm_env["other"]) as other:
        for call in (
            lambda: sdk.cache_namespaces("demo", client=other),
            lambda: sdk.list_prompts("demo", client=other),
            lambda: sdk.flush_cache("demo", client=other),
        ):
            with pytest.raises(NotFound):
                call()
        with pytest.raises(NotFound, match="does not exist in project 'other'"):  # demo's entry, via other
            sdk.flag_cached_answer("other", int(entry), client=other)
        assert sdk.cache_namespaces("other", client=other) == []
    monkeypatch.setenv("KOSMOS_CLIENT__URL", llm_env["url"])
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", llm_env["admin"])
    get_settings.cache_clear()  # the clients above read the settings before these variables
    runner = CliRunner()
    registered = runner.invoke(
        app, ["prompts", "register", "greeting", "-t", "Greet {{name}}.", "-m", "v1", "-p", "demo"]
    )
    assert registered.exit_code == 0, registered.output
    shown = runner.invoke(app, ["prompts", "show", "greeting", "-p", "demo", "-o", "json"])
    assert json.loads(shown.output)["versions"][0]["variables"] == ["name"]
    stats = runner.invoke(app, ["cache", "stats", "-p", "demo", "-o", "json"])
    assert stats.exit_code == 0 and json.loads(stats.output)["requests"] > 0
    spaces = runner.invoke(app, ["cache", "namespaces", "-p", "demo"])
    assert spaces.exit_code == 0 and "FALSE_HITS" in spaces.output, spaces.output
    flushed = runner.invoke(app, ["cache", "flush", "-p", "demo", "--yes"])
    assert flushed.exit_code == 0 and "invalidated" in flushed.output
    bad = runner.invoke(app, ["cache", "invalidate", "-p", "demo"])
    assert bad.exit_code == 2 and "exactly one" in bad.output
    missing = runner.invoke(app, ["prompts", "diff", "nope", "1", "2", "-p", "demo"])
    assert missing.exit_code == 5
