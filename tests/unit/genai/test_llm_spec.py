"""The LLM spec's checks and its translation to Ray Serve LLM's LLMConfig (vLLM cannot run here)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kosmos.deployment.spec import DeploymentSpec
from kosmos.genai.engines.vllm import engine_kwargs, llm_config
from kosmos.genai.spec import LLMSpec

GPU_SPEC = {
    "engine": "vllm",
    "quantization": "fp8",
    "kv_cache_dtype": "fp8",
    "tensor_parallel_size": 2,
    "cpu_offload_gb": 4,
    "max_num_seqs": 128,
    "max_model_len": 8192,
    "enable_prefix_caching": True,
    "speculative": {"method": "ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 3},
    "num_gpus": 2,
}


def test_every_engine_knob_reaches_vllm_engine_args() -> None:
    kwargs = engine_kwargs(LLMSpec(**GPU_SPEC))
    assert kwargs == {
        "dtype": "auto",
        "max_num_seqs": 128,
        "enable_prefix_caching": True,
        "gpu_memory_utilization": 0.9,
        "tensor_parallel_size": 2,
        "pipeline_parallel_size": 1,
        "quantization": "fp8",
        "kv_cache_dtype": "fp8",
        "cpu_offload_gb": 4,
        "max_model_len": 8192,
        "speculative_config": {"num_speculative_tokens": 5, "method": "ngram", "prompt_lookup_max": 3},
    }
    draft = LLMSpec(engine="vllm", speculative={"method": "draft_model", "draft_model": "/models/tiny"})
    assert engine_kwargs(draft)["speculative_config"] == {
        "num_speculative_tokens": 4,
        "method": "draft_model",
        "model": "/models/tiny",
    }


def test_the_translation_is_a_valid_ray_serve_llm_config() -> None:
    # ray.serve.llm itself refuses to import without vLLM; its LLMConfig model does not need it
    from ray.llm._internal.serve.core.configs.llm_config import LLMConfig

    scaling = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16}}
    config = llm_config(
        LLMSpec(**GPU_SPEC),
        model_id="assistant",
        model_source="/cache/blobs/abc/artifacts/hf",
        scaling=scaling,
    )
    parsed = LLMConfig(**config)
    assert parsed.model_loading_config.model_id == "assistant"
    assert parsed.model_loading_config.model_source == "/cache/blobs/abc/artifacts/hf"
    assert parsed.engine_kwargs["tensor_parallel_size"] == 2
    assert parsed.deployment_config["autoscaling_config"]["max_replicas"] == 4


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"engine": "transformers", "quantization": "awq"}, "transformers engine has no quantization"),
        ({"engine": "transformers", "tensor_parallel_size": 2}, "no tensor_parallel_size"),
        ({"engine": "transformers", "kv_cache_dtype": "fp8"}, "an fp8 KV cache"),
        ({"engine": "transformers", "speculative": {}}, "speculative decoding"),
        ({"engine": "vllm", "cpu_weights": "int8"}, "cpu_weights applies to the transformers engine"),
        ({"engine": "vllm", "tensor_parallel_size": 4, "num_gpus": 2}, "must equal tensor_parallel_size"),
        ({"quantization": "fp8", "dtype": "float32"}, "fp8 quantization computes in 16 bits"),
        ({"speculative": {"method": "eagle"}}, "needs draft_model"),
        ({"speculative": {"method": "ngram", "draft_model": "x"}}, "draft_model must be unset"),
        ({"max_num_seqs": 0}, "max_num_seqs"),
        ({"engine": "tensorrt"}, "engine"),
    ],
)
def test_invalid_combinations_are_rejected_with_the_reason(spec: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        LLMSpec(**spec)


def test_deploy_time_checks_against_the_model_config() -> None:
    config = {"num_attention_heads": 9, "max_position_embeddings": 8192}
    with pytest.raises(ValueError, match="must divide the model's 9 attention heads"):
        LLMSpec(engine="vllm", tensor_parallel_size=2).check_model(config)
    with pytest.raises(ValueError, match="exceeds the model's context of 8192"):
        LLMSpec(max_model_len=16384).check_model(config)
    with pytest.raises(ValueError, match="needs a checkpoint quantized with awq; this one is not quantized"):
        LLMSpec(engine="vllm", quantization="awq").check_model(config)
    LLMSpec(engine="vllm", quantization="awq").check_model(
        {**config, "quantization_config": {"quant_method": "awq"}}
    )


def test_a_deployment_spec_validates_its_llm_part() -> None:
    spec = DeploymentSpec(model="smollm2", llm={"engine": "transformers", "max_num_seqs": 4})
    assert spec.llm == {"engine": "transformers", "max_num_seqs": 4}
    with pytest.raises(ValidationError, match="llm: quantization"):
        DeploymentSpec(model="smollm2", llm={"quantization": "int3"})
    with pytest.raises(ValidationError, match="apply to classic models"):
        DeploymentSpec(model="smollm2", llm={}, feature_service="fraud_detection_v1")


def test_a_vllm_version_without_vllm_installed_is_refused_with_the_remedy() -> None:
    from kosmos.genai.engines.vllm import version_app

    with pytest.raises(ValueError, match=r"needs vLLM and a GPU: pip install 'kosmos-genai\[vllm\]'"):
        version_app(
            LLMSpec(engine="vllm"), model_id="m", model_source="/x", scaling={"num_replicas": 1}, version=1
        )
