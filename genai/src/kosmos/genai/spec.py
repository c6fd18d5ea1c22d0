"""What an LLM deployment should be: the engine and its knobs, checked before anything starts.

The knobs are the ones inference-acceleration work names: weight quantization (awq,
gptq, fp8), an fp8 KV cache, tensor parallelism over GPUs, CPU offload of weights,
the number of sequences batched together, the context length, prefix caching and
speculative decoding. Most of them only exist in vLLM; asking the transformers
engine for one is rejected with the reason, never silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Speculative(BaseModel):
    """Speculative decoding (vLLM): a cheap proposer drafts tokens the model verifies in one pass."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["ngram", "draft_model", "eagle"] = Field(
        "ngram", description="ngram: draft from the prompt itself; draft_model / eagle: a smaller model."
    )
    num_speculative_tokens: int = Field(4, ge=1, le=16, description="Tokens drafted per step.")
    draft_model: str | None = Field(None, description="draft_model / eagle: the proposer model (path or id).")
    prompt_lookup_max: int = Field(4, ge=1, le=16, description="ngram: longest n-gram matched in the prompt.")

    @model_validator(mode="after")
    def _proposer(self) -> Speculative:
        if self.method != "ngram" and not self.draft_model:
            raise ValueError(f"speculative method {self.method} needs draft_model, the proposer model")
        if self.method == "ngram" and self.draft_model:
            raise ValueError("speculative method ngram drafts from the prompt; draft_model must be unset")
        return self


class LLMSpec(BaseModel):
    """An LLM endpoint: which registered model, which engine, and how the engine runs it.

    Engine-neutral checks live here; what one engine cannot honour is refused by that
    engine's ``check_spec`` (see ``kosmos.genai.engines``), so the error names the field.
    """

    model_config = ConfigDict(extra="forbid")

    engine: str = Field(
        "auto",
        description="A registered engine (transformers, vllm, ...) or auto: the highest-ranked one "
        "that can run here (vLLM when its environment is installed, else transformers).",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Compute dtype; auto: bfloat16."
    )
    cpu_weights: Literal["bf16", "int8", "float32"] = Field(
        "bf16",
        description="transformers on CPU: bf16 weights, or int8 dynamic quantization of Linear layers.",
    )
    quantization: Literal["awq", "gptq", "compressed-tensors", "fp8", "bitsandbytes"] | None = Field(
        None,
        description="vLLM weight quantization; awq, gptq and compressed-tensors (int8 w8a8) need a "
        "checkpoint quantized that way and also run on CPU; fp8 and bitsandbytes quantize on load, GPU only.",
    )
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = Field(
        "auto", description="vLLM KV-cache dtype; fp8 halves KV memory (more sequences in flight)."
    )
    kv_cache_memory_gb: float | None = Field(
        None,
        gt=0,
        le=4096,
        description="vLLM: GiB reserved for the KV cache (CPU: VLLM_CPU_KVCACHE_SPACE; GPU: instead of "
        "gpu_memory_utilization). Default: enough for max_num_seqs full contexts, at least 1 GiB on CPU.",
    )
    tensor_parallel_size: int = Field(1, ge=1, le=16, description="vLLM: GPUs one replica shards over.")
    pipeline_parallel_size: int = Field(1, ge=1, le=16, description="vLLM: pipeline stages per replica.")
    cpu_offload_gb: float = Field(
        0, ge=0, le=1024, description="vLLM on GPU: GiB of weights kept in CPU memory (GPU/CPU hybrid)."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=0.98, description="vLLM on GPU: share of GPU memory for weights and KV cache."
    )
    max_num_seqs: int = Field(32, ge=1, le=4096, description="Most sequences decoded together per replica.")
    max_num_batched_tokens: int | None = Field(
        None,
        ge=16,
        le=1_048_576,
        description="vLLM: most tokens one engine step computes (prefill chunks plus decodes); "
        "default: vLLM's.",
    )
    enable_chunked_prefill: bool | None = Field(
        None,
        description="vLLM: split long prompts into chunks batched with decodes (steadier latency); "
        "default: vLLM's (on).",
    )
    max_model_len: int | None = Field(
        None, ge=16, le=1_048_576, description="Context length (prompt + completion); default: the model's."
    )
    enable_prefix_caching: bool = Field(True, description="Reuse KV blocks of shared prompt prefixes.")
    enforce_eager: bool = Field(
        False,
        description="vLLM: skip graph compilation; the engine starts in about half the time and decodes "
        "10-20% slower (measured on CPU, docs/llm.md).",
    )
    speculative: Speculative | None = Field(None, description="vLLM speculative decoding.")
    default_max_tokens: int = Field(256, ge=1, le=32768, description="max_tokens when a request gives none.")
    num_gpus: float = Field(
        0, ge=0, le=16, description="GPUs per replica (vLLM: tensor x pipeline parallel); 0 runs on CPU."
    )

    @field_validator("engine")
    @classmethod
    def _registered(cls, engine: str) -> str:
        from kosmos.genai import engines

        if engine != "auto":
            engines.engine_class(engine)  # a ValueError listing the valid names
        return engine

    @model_validator(mode="after")
    def _combinations(self) -> LLMSpec:
        if self.quantization == "fp8" and self.dtype == "float32":
            raise ValueError("fp8 quantization computes in 16 bits; use dtype auto, bfloat16 or float16")
        if self.kv_cache_dtype != "auto" and self.dtype == "float32":
            raise ValueError("an fp8 KV cache needs a 16-bit dtype, not float32")
        if self.engine != "auto":
            from kosmos.genai import engines

            engines.engine_class(self.engine).check_spec(self)
        return self

    def is_set(self, field: str) -> bool:
        """Whether ``field`` differs from its default (engines refuse knobs they cannot honour)."""
        default = type(self).model_fields[field].default
        return getattr(self, field) != default

    def check_model(self, config: dict) -> None:
        """Deploy-time checks against the model's ``config.json``; raises ValueError naming the problem."""
        heads = config.get("num_attention_heads")
        if heads and heads % self.tensor_parallel_size:
            raise ValueError(
                f"tensor_parallel_size {self.tensor_parallel_size} must divide the model's "
                f"{heads} attention heads"
            )
        limit = config.get("max_position_embeddings")
        if self.max_model_len and limit and self.max_model_len > limit:
            raise ValueError(
                f"max_model_len {self.max_model_len} exceeds the model's context of {limit} tokens"
            )
        quantized = (config.get("quantization_config") or {}).get("quant_method")
        if self.quantization in ("awq", "gptq") and quantized != self.quantization:
            raise ValueError(
                f"quantization {self.quantization} needs a checkpoint quantized with {self.quantization}; "
                f"this one is {quantized or 'not quantized'} (fp8 quantizes on load)"
            )
