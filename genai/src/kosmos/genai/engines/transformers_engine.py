"""The transformers engine (CPU and GPU): continuous batching from transformers itself.

Concurrent requests share decode steps through transformers' ``ContinuousBatchingManager``
(paged KV cache, requests join and leave the batch at every step, per-request
temperature and top-p). Each request streams its tokens back through a result handler
on the replica's event loop. Closing a stream cancels its request, which frees its slot.

A request with a ``seed`` runs apart from the batch in a small decode loop of its own
with a private ``torch.Generator``, so the same seed gives the same text whatever else
is running. (The batch samples from one shared generator.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kosmos.genai.engines.base import (
    Delta,
    InferenceEngine,
    SamplingParams,
    UnsupportedParameter,
    check_context,
)

if TYPE_CHECKING:
    from kosmos.genai.spec import LLMSpec
    from kosmos.platform.settings import Settings

log = logging.getLogger(__name__)
GREEDY_TEMPERATURE = 1e-4  # the batch divides logits by the temperature: 0 would be a division by zero
DEFAULT_CONTEXT = 2048


VLLM_ONLY = {
    "quantization": "weight quantization (awq, gptq, fp8)",
    "kv_cache_dtype": "an fp8 KV cache",
    "kv_cache_memory_gb": "a KV cache size (it sizes its paged cache from max_num_seqs x max_model_len)",
    "tensor_parallel_size": "tensor parallelism",
    "pipeline_parallel_size": "pipeline parallelism",
    "cpu_offload_gb": "CPU offload of weights",
    "max_num_batched_tokens": "a token budget per step",
    "enable_chunked_prefill": "chunked prefill",
    "enforce_eager": "graph compilation to skip",
    "speculative": "speculative decoding",
}
"""Spec fields the transformers engine does not implement, with what they are (for errors)."""


class TransformersEngine(InferenceEngine):
    """transformers' continuous batching in the replica: CPU or GPU, any causal LM transformers loads."""

    name = "transformers"
    auto_rank = 0

    @classmethod
    def check_spec(cls, spec: LLMSpec) -> None:
        used = [f"{field} ({what})" for field, what in VLLM_ONLY.items() if spec.is_set(field)]
        if used:
            raise ValueError(f"the transformers engine has no {', '.join(used)}; use engine vllm")

    def __init__(self, model_path: str | Path, spec: LLMSpec, settings: Settings | None = None) -> None:
        super().__init__(model_path, spec, settings)
        self.model: Any = None
        self.tokenizer: Any = None
        self.manager: Any = None
        self.device = "cpu"
        self._context = spec.max_model_len or DEFAULT_CONTEXT
        self._seeded_lock = threading.Lock()

    @property
    def context_length(self) -> int:
        return self._context

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._load)
        async for _ in self.generate(self.encode("Hello"), SamplingParams(max_tokens=2)):
            pass  # the first batch allocates the paged cache: pay for it before traffic comes

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.generation import ContinuousBatchingConfig, GenerationConfig

        self.device = "cuda" if torch.cuda.is_available() and self.spec.num_gpus > 0 else "cpu"
        int8 = self.device == "cpu" and self.spec.cpu_weights == "int8"
        dtype = {
            "float32": torch.float32,
            "float16": torch.float16,
            "bfloat16": torch.bfloat16,
        }.get(self.spec.dtype, torch.bfloat16)
        if int8 or (self.device == "cpu" and self.spec.cpu_weights == "float32"):
            dtype = torch.float32  # dynamic int8 quantization computes around float32 activations
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=dtype).to(self.device).eval()
        if int8:
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        limit = getattr(model.config, "max_position_embeddings", None) or DEFAULT_CONTEXT
        self._context = min(self.spec.max_model_len or min(limit, DEFAULT_CONTEXT), limit)
        eos = self.tokenizer.eos_token_id
        generation = GenerationConfig(
            max_new_tokens=self.spec.default_max_tokens,
            do_sample=True,
            temperature=0.7,  # defaults that make the per-request processors exist; requests set their own
            top_p=0.95,
            top_k=0,
            eos_token_id=eos,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos,
        )
        page = 256
        batching = ContinuousBatchingConfig(
            per_request_processors=True,
            page_size=page,
            max_requests_per_batch=self.spec.max_num_seqs,
            num_blocks=math.ceil(self.spec.max_num_seqs * self._context / page),
            allow_block_sharing=self.spec.enable_prefix_caching,
            # graph-captured decode steps: 2.5-3x the tokens/s on an H100 (bench/RESULTS.md)
            use_cuda_graph=self.device == "cuda",
        )
        self.manager = model.init_continuous_batching(
            generation_config=generation, continuous_batching_config=batching
        )
        self.manager.start()
        log.info("loaded %s on %s (%s), context %d", self.model_path.name, self.device, dtype, self._context)

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        return chat_ids(self.tokenizer, messages)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def describe(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "max_num_seqs": self.spec.max_num_seqs,
            "cpu_weights": self.spec.cpu_weights,
        }

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        check_context(prompt_ids, params, self._context)
        if params.frequency_penalty or params.presence_penalty:  # a 400 naming the field, not ignored
            raise UnsupportedParameter(
                "frequency_penalty" if params.frequency_penalty else "presence_penalty",
                "frequency_penalty and presence_penalty need the vllm engine; this model is served by "
                "the transformers engine (the LLM spec's engine)",
            )
        if params.seed is not None:
            async for delta in self._generate_seeded(prompt_ids, params):
                yield delta
            return
        request_id = uuid.uuid4().hex
        outputs: asyncio.Queue[Any] = asyncio.Queue()
        self.manager.register_result_handler(request_id, outputs.put_nowait)
        self.manager.add_request(
            prompt_ids,
            request_id=request_id,
            max_new_tokens=params.max_tokens,
            streaming=True,
            temperature=max(params.temperature, GREEDY_TEMPERATURE),
            top_p=params.top_p,
        )
        texts = _TextStream(self.tokenizer, params)
        done = False
        try:
            while not done:
                output = await outputs.get()
                if output.error:
                    raise RuntimeError(f"generation failed: {output.error}")
                delta = texts.update(output.generated_tokens, output.is_finished(), len(prompt_ids))
                done = delta.finish_reason is not None
                if delta.text or done:
                    yield delta
        finally:
            if not done:  # the client went away or a stop sequence ended it: free the slot now
                self.manager.cancel_request(request_id)

    async def _generate_seeded(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Delta]:
        """One sequence, its own generator: reproducible for a given seed (not batched)."""
        loop = asyncio.get_running_loop()
        outputs: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def run() -> None:
            import torch

            generator = torch.Generator(device=self.device).manual_seed(params.seed or 0)
            tokens: list[int] = []
            with self._seeded_lock, torch.inference_mode():
                ids = torch.tensor([prompt_ids], device=self.device)
                past = None
                for _ in range(params.max_tokens):
                    if cancelled.is_set():
                        return
                    out = self.model(input_ids=ids, past_key_values=past, use_cache=True)
                    past = out.past_key_values
                    logits = out.logits[0, -1].float()
                    token = _sample(logits, params, generator)
                    tokens.append(token)
                    finished = token == self.tokenizer.eos_token_id or len(tokens) >= params.max_tokens
                    loop.call_soon_threadsafe(outputs.put_nowait, (list(tokens), finished))
                    if finished:
                        return
                    ids = torch.tensor([[token]], device=self.device)

        future = loop.run_in_executor(None, run)
        texts = _TextStream(self.tokenizer, params)
        done = False
        try:
            while not done:
                tokens, finished = await outputs.get()
                delta = texts.update(tokens, finished, len(prompt_ids))
                done = delta.finish_reason is not None
                if delta.text or done:
                    yield delta
        finally:
            cancelled.set()
            await asyncio.shield(future)

    async def check_health(self) -> None:
        status = getattr(self.manager, "background_thread_status", None)
        error = getattr(status, "fatal_error", None)
        if error is not None:
            raise RuntimeError(f"the batching thread died: {error}")

    async def stop(self) -> None:
        if self.manager is not None:
            self.manager.stop(block=False)


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of ``messages`` under ``tokenizer``'s chat template, ready for the assistant turn."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    return list(encoded["input_ids"] if isinstance(encoded, dict) or hasattr(encoded, "keys") else encoded)


def _sample(logits: Any, params: SamplingParams, generator: Any) -> int:
    import torch

    if params.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        ordered, index = torch.sort(probs, descending=True)
        keep = torch.cumsum(ordered, dim=-1) - ordered < params.top_p
        probs = torch.zeros_like(probs).scatter(0, index[keep], ordered[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


class _TextStream:
    """Token ids in, text deltas out: applies stop sequences and never splits a character."""

    def __init__(self, tokenizer: Any, params: SamplingParams) -> None:
        self.tokenizer, self.params = tokenizer, params
        self.sent = ""
        self.hold = max((len(s) for s in params.stop), default=1) - 1  # a stop may be arriving

    def update(self, tokens: list[int], finished: bool, prompt_tokens: int) -> Delta:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        finish = None
        hits = [i for i in (text.find(s) for s in self.params.stop) if i >= 0]
        if hits:
            text, finish = text[: min(hits)], "stop"
        elif finished:
            eos = tokens and tokens[-1] == self.tokenizer.eos_token_id
            finish = "stop" if eos or len(tokens) < self.params.max_tokens else "length"
        else:
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                text = text[:-1]
            text = text[: max(len(self.sent), len(text) - self.hold)]
        new = text[len(self.sent) :] if text.startswith(self.sent) else ""
        self.sent = text if text.startswith(self.sent) else self.sent
        return Delta(new, finish, len(tokens), prompt_tokens)
