"""The LLM spec's checks and its translation to vLLM's engine arguments, checked by vLLM itself
(the CPU engine environment's parser) and by Ray Serve LLM's LLMConfig."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from kosmos.deployment.spec import DeploymentSpec
from kosmos.genai.engines.vllm import engine_kwargs, llm_config
from kosmos.genai.engines.vllm_server import cli_args, vllm_python
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
    kwargs = engine_kwargs(LLMSpec(**GPU_SPEC, max_num_batched_tokens=4096, kv_cache_memory_gb=20))
    assert kwargs == {
        "max_num_batched_tokens": 4096,
        "kv_cache_memory_bytes": 20 * 2**30,
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
    draft = LLMSpec(
        engine="vllm", num_gpus=1, speculative={"method": "draft_model", "draft_model": "/models/tiny"}
    )
    assert engine_kwargs(draft)["speculative_config"] == {
        "num_speculative_tokens": 4,
        "method": "draft_model",
        "model": "/models/tiny",
    }


CPU_SPEC = {
    "engine": "vllm",
    "kv_cache_dtype": "fp8",
    "max_num_batched_tokens": 512,
    "enable_chunked_prefill": False,
    "enforce_eager": True,
    "enable_prefix_caching": False,
    "max_model_len": 1024,
    "speculative": {"method": "ngram", "num_speculative_tokens": 3},
}


def test_cpu_engine_args_become_vllm_serve_flags() -> None:
    flags = cli_args(engine_kwargs(LLMSpec(**CPU_SPEC), gpu=False))
    pairs = dict(zip(flags, [*flags[1:], None], strict=True))
    assert pairs["--dtype"] == "bfloat16" and pairs["--max-num-batched-tokens"] == "512"
    assert {"--enforce-eager", "--no-enable-chunked-prefill", "--no-enable-prefix-caching"} <= set(flags)
    assert not any("gpu" in f or "offload" in f for f in flags)  # GPU-only knobs stay out on CPU


def test_the_translation_is_what_real_vllm_parses() -> None:
    """vLLM's own argument parser and EngineArgs, in the CPU engine environment `make install` builds."""
    python = vllm_python()
    assert python.exists(), f"{python} is missing: `make install` builds the CPU engine environment"
    probe = (
        "import json, sys\n"
        "from vllm.engine.arg_utils import AsyncEngineArgs, EngineArgs\n"
        "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
        "cpu, gpu = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "parser = FlexibleArgumentParser(); AsyncEngineArgs.add_cli_args(parser)\n"
        "a = AsyncEngineArgs.from_cli_args(parser.parse_args(['--model', '/m', *cpu]))\n"
        "g = EngineArgs(model='/m', **gpu)\n"
        "print(json.dumps({'cpu': {k: getattr(a, k) for k in ('dtype', 'kv_cache_dtype', 'enforce_eager',"
        " 'max_num_batched_tokens', 'enable_chunked_prefill', 'enable_prefix_caching', 'max_model_len',"
        " 'speculative_config')}, 'gpu': {k: getattr(g, k) for k in gpu}}, default=str))\n"
    )
    cpu = cli_args(engine_kwargs(LLMSpec(**CPU_SPEC), gpu=False))
    gpu = engine_kwargs(LLMSpec(**GPU_SPEC, kv_cache_memory_gb=20, enforce_eager=True))
    out = subprocess.run(
        [str(python), "-c", probe, json.dumps(cpu), json.dumps(gpu)],
        capture_output=True,
        text=True,
        timeout=180,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["cpu"] == {
        "dtype": "bfloat16",
        "kv_cache_dtype": "fp8",
        "enforce_eager": True,
        "max_num_batched_tokens": 512,
        "enable_chunked_prefill": False,
        "enable_prefix_caching": False,
        "max_model_len": 1024,
        "speculative_config": {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4},
    }
    assert parsed["gpu"]["kv_cache_memory_bytes"] == 20 * 2**30 and parsed["gpu"]["quantization"] == "fp8"
    assert parsed["gpu"]["tensor_parallel_size"] == 2 and parsed["gpu"]["cpu_offload_gb"] == 4


def test_the_translation_is_a_valid_ray_serve_llm_config() -> None:
    # ray.serve.llm itself refuses to import without vLLM; its LLMConfig model does not need it.
    # A fresh interpreter: Serve's config validation pickles its autoscaling policy by value, and
    # once failed after the whole suite had run in one process (not reproduced alone).
    probe = (
        "import json, sys\n"
        "from ray.llm._internal.serve.core.configs.llm_config import LLMConfig\n"
        "p = LLMConfig(**json.loads(sys.argv[1]))\n"
        "m = p.model_loading_config\n"
        "print(json.dumps({'id': m.model_id, 'source': m.model_source,"
        " 'tp': p.engine_kwargs['tensor_parallel_size'],"
        " 'max_replicas': p.deployment_config['autoscaling_config']['max_replicas']}))\n"
    )
    scaling = {"autoscaling_config": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16}}
    config = llm_config(
        LLMSpec(**GPU_SPEC),
        model_id="assistant",
        model_source="/cache/blobs/abc/artifacts/hf",
        scaling=scaling,
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(config)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    source = "/cache/blobs/abc/artifacts/hf"
    assert parsed == {"id": "assistant", "source": source, "tp": 2, "max_replicas": 4}


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
        ({"engine": "tensorrt"}, "unknown engine 'tensorrt'; valid: auto, fake, transformers, vllm"),
        ({"engine": "transformers", "enforce_eager": True}, "no enforce_eager"),
        ({"engine": "transformers", "max_num_batched_tokens": 512}, "no max_num_batched_tokens"),
        ({"engine": "vllm", "quantization": "fp8"}, "quantization fp8 needs a GPU"),
        ({"engine": "vllm", "cpu_offload_gb": 4}, "cpu_offload_gb offloads GPU weights"),
        (
            {"engine": "vllm", "tensor_parallel_size": 2},
            "tensor_parallel_size shards over GPUs",
        ),
        ({"engine": "vllm", "speculative": {"method": "eagle", "draft_model": "x"}}, "eagle needs a GPU"),
    ],
)
def test_invalid_combinations_are_rejected_with_the_reason(spec: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        LLMSpec(**spec)


def test_deploy_time_checks_against_the_model_config() -> None:
    config = {"num_attention_heads": 9, "max_position_embeddings": 8192}
    with pytest.raises(ValueError, match="must divide the model's 9 attention heads"):
        LLMSpec(engine="vllm", tensor_parallel_size=2, num_gpus=2).check_model(config)
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


@pytest.mark.parametrize("strategy", ["shadow", "ab"])
def test_llm_deployments_refuse_strategies_the_llm_router_does_not_carry_out(strategy: str) -> None:
    from pydantic import ValidationError

    from kosmos.deployment.spec import DeploymentSpec, Strategy

    rollout = {"strategy": strategy, **({"ab_key": "user"} if strategy == "ab" else {})}
    with pytest.raises(ValidationError, match=f"rollout.strategy: .*not {strategy}"):
        DeploymentSpec(model="assistant", llm={}, rollout=rollout)
    llm = DeploymentSpec(model="assistant", llm={})
    assert llm.strategy_problem(Strategy(strategy)) and llm.strategy_problem(Strategy.canary) is None
    assert DeploymentSpec(model="fraud", rollout=rollout).strategy_problem(Strategy(strategy)) is None


def test_a_parameter_the_engine_cannot_apply_is_a_400_naming_it() -> None:
    from kosmos.genai.engines.base import UnsupportedParameter
    from kosmos.genai.serving import invalid

    error = invalid(UnsupportedParameter("frequency_penalty", "frequency_penalty needs the vllm engine"))
    assert error.status == 400
    assert error.body["error"]["param"] == "frequency_penalty"
    assert error.body["error"]["code"] == "unsupported_parameter"
