"""The assistant's gateway call when the model's engine has no repetition penalties.

The gateway is replaced by a recorder of the bodies it is sent: what is tested is the assistant's
own retry, not the gateway (tests/integration/genai/test_assistant.py runs it all for real, on
vLLM, which applies penalties; the transformers engine refusing them by name is in the engine
contract, tests/integration/genai/test_engine_contract.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kosmos.genai import chat
from kosmos.genai.assistant import service
from kosmos.genai.protocol import error_body


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    async def complete(call: Any, gateway: Any, project: str, body: dict[str, Any], kind: str) -> Any:
        bodies.append(body)
        if body["messages"] == ["long"]:
            error = error_body("too long", "invalid_request_error", "context_length_exceeded", "messages")
            return chat.ChatOutcome("chat", body["model"], "r0", http_status=400, error=error)
        if "frequency_penalty" in body:  # what the transformers engine answers through the gateway
            error = error_body("frequency_penalty needs the vllm engine", "invalid_request_error",
                               "unsupported_parameter", "frequency_penalty")  # fmt: skip
            return chat.ChatOutcome("chat", body["model"], "r1", http_status=400, error=error)
        return chat.ChatOutcome("chat", body["model"], "r2", status="ok", text="Version 1.")

    monkeypatch.setattr(chat, "complete", complete)
    monkeypatch.setattr("kosmos.genai.api.gateway_of", lambda call: None)
    return bodies


def test_an_engine_without_penalties_is_asked_again_without_them(sent) -> None:
    body = {"model": "assistant-llm", "messages": [], "frequency_penalty": 1.0}
    outcome = asyncio.run(service._complete(None, "demo", body))
    assert outcome.ok and outcome.text == "Version 1."
    assert [("frequency_penalty" in b) for b in sent] == [True, False]


def test_other_refusals_are_not_retried(sent) -> None:
    body = {"model": "assistant-llm", "messages": ["long"], "frequency_penalty": 1.0}
    outcome = asyncio.run(service._complete(None, "demo", body))
    assert outcome.http_status == 400 and len(sent) == 1
