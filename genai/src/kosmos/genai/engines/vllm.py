"""The vLLM backend: Kosmos's LLM spec translated to Ray Serve LLM's ``LLMConfig``.

On GPUs Kosmos does not wrap vLLM: Ray Serve LLM (``ray.serve.llm``) already hosts it
with an OpenAI-compatible app, so this module only turns an ``LLMSpec`` into the
``LLMConfig`` that ``build_openai_app`` takes. vLLM is the ``vllm`` extra
(``pip install 'kosmos-genai[vllm]'``) and needs an NVIDIA GPU.
"""

from __future__ import annotations

from typing import Any

from kosmos.genai.spec import LLMSpec


def engine_kwargs(spec: LLMSpec) -> dict[str, Any]:
    """vLLM ``EngineArgs`` for ``spec`` (only what differs from vLLM's defaults, plus the batch size)."""
    kwargs: dict[str, Any] = {
        "dtype": spec.dtype,
        "max_num_seqs": spec.max_num_seqs,
        "enable_prefix_caching": spec.enable_prefix_caching,
        "gpu_memory_utilization": spec.gpu_memory_utilization,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "pipeline_parallel_size": spec.pipeline_parallel_size,
    }
    if spec.quantization:
        kwargs["quantization"] = spec.quantization
    if spec.kv_cache_dtype != "auto":
        kwargs["kv_cache_dtype"] = spec.kv_cache_dtype
    if spec.cpu_offload_gb:
        kwargs["cpu_offload_gb"] = spec.cpu_offload_gb
    if spec.max_model_len:
        kwargs["max_model_len"] = spec.max_model_len
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


def build_app(config: dict[str, Any]) -> Any:
    """Ray Serve LLM's OpenAI app for one model (needs vLLM installed)."""
    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as exc:
        raise RuntimeError(
            "the vllm engine needs vLLM and a GPU: pip install 'kosmos-genai[vllm]'; "
            "or deploy with engine: transformers"
        ) from exc
    return build_openai_app({"llm_configs": [LLMConfig(**config)]})
