"""The vLLM path's adapter on real Ray Serve, in front of a FAKE Ray Serve LLM server.

vLLM needs a GPU, so ``FakeVLLMServer`` stands in for Ray Serve LLM's ``LLMServer``: it
yields what that server yields for a streamed request (batches of ``data: {json}`` strings
in OpenAI's chunk format, a usage chunk, ``[DONE]``; an ErrorResponse-shaped object on
error). What is tested is the real adapter (``kosmos.genai.engines.vllm.VLLMAdapter``),
which turns that stream into the chunks and usage item the Kosmos control plane relays.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ray import serve

from kosmos.genai.engines.vllm import VLLMAdapter

pytestmark = pytest.mark.timeout(300)
WORDS = ["The", " capital", " of", " France", " is", " Paris", "."]


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class FakeVLLMServer:
    """A FAKE of ray.serve.llm's LLMServer, for CPU tests only."""

    async def chat(self, request: dict[str, Any]) -> Any:
        assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
        if request.get("max_tokens", 16) > 4096:
            yield {"error": {"message": "max_tokens is too large", "type": "BadRequestError", "code": 400}}
            return

        def sse(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps(payload)}\n\n"

        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": request["model"],
        }
        words = WORDS[: request.get("max_tokens", 16)]
        for i in range(0, len(words), 3):  # Ray Serve LLM batches a stream's strings
            yield [
                sse({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
                for w in words[i : i + 3]
            ]
        yield [
            sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            sse({**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(words)}}),
            "data: [DONE]\n\n",
        ]

    async def completions(self, request: dict[str, Any]) -> Any:
        yield [
            f"data: {json.dumps({'error': {'message': 'boom', 'type': 'server_error', 'code': 'oops'}})}\n\n"
        ]


@pytest.fixture(scope="module")
def adapter(ray_cluster: str) -> Any:
    serve.start(proxy_location="Disabled")
    bound = serve.deployment(name="model", ray_actor_options={"num_cpus": 0.1})(VLLMAdapter).bind(
        FakeVLLMServer.bind(), 7, False
    )
    handle = serve.run(bound, name="test-vllm-adapter", route_prefix=None)
    yield handle.options(stream=True)
    serve.delete("test-vllm-adapter")


def _collect(handle: Any, body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return list(handle.generate.remote(body, kind))


def test_a_vllm_stream_becomes_kosmos_chunks_and_a_usage_item(adapter) -> None:
    items = _collect(adapter, {"model": "big", "messages": [{"role": "user", "content": "hi"}]}, "chat")
    chunks, final = items[:-1], items[-1]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "".join(WORDS)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    assert final["usage"] == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    assert final["model_version"] == 7 and final["ttft_ms"] <= final["latency_ms"]


def test_vllm_errors_come_back_in_openai_shape_with_a_status(adapter) -> None:
    items = _collect(adapter, {"model": "big", "messages": [], "max_tokens": 10**6}, "chat")
    assert items == [
        {
            "error": {
                "error": {
                    "message": "max_tokens is too large",
                    "type": "BadRequestError",
                    "param": None,
                    "code": None,
                }
            },
            "status": 400,
        }
    ]
    (failed,) = _collect(adapter, {"model": "big", "prompt": "x"}, "completion")
    assert failed["status"] == 500 and failed["error"]["error"]["message"] == "boom"
