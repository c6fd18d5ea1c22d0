"""LLM serving by concurrency: vLLM in-process, Kosmos's transformers engine, Kosmos's endpoint on vLLM.

    .venv/bin/python bench/llm_serving.py                      # CPU: SmolLM2-135M, (a), (b), (c)
    python3 bench/llm_serving.py --engine-only --model llama-1.1b --device cuda   # GPU machine

(a) vLLM's own AsyncLLM in-process (the CPU engine environment, same engine arguments as (c));
(b) Kosmos's transformers engine in-process (continuous batching);
(c) the same model deployed on the vLLM engine by `kosmos up`, called through the data plane
    with the openai client, streaming.
Every stream sends the same chat prompt (64 tokens with the template), samples at
temperature 1 up to --tokens new tokens, after a warm-up. Prints tokens/s, time to first
token (TTFT) p50/p99 and inter-token latency (ITL) per concurrency, c/a and b/a.
--engine-only runs (b) alone (a GPU machine without the platform) and adds plain
`model.generate` with the same prompt length and a warm-up of the same length as the
reference. `--model llama-1.1b` is a TinyLlama-1.1B-shaped LlamaConfig with random bf16 weights.

Goals (issue 18): c/a >= 0.9 and a/b >= 5 at 32 streams; TTFT p50 at 8 streams < 1 s for (c).
GPU: the transformers engine >= 3x plain generate at 32 streams.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for src in ("platform/src", "genai/src", "deployment/src"):
    sys.path.insert(0, str(ROOT / src))  # a GPU machine runs this without installing Kosmos
from _platform import free_port, start_platform  # noqa: E402

PROMPT = (
    "You are the support assistant of a card payments company. A customer writes: my card was "
    "declined twice at a grocery store this morning although my balance is fine. Explain the likely "
    "reasons and what I should do next, in a friendly tone."
)  # 64 tokens with SmolLM2's chat template


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def _summary(results: list[tuple[float, list[float], int]], wall: float) -> dict[str, float]:
    """results: (ttft s, inter-token gaps s, tokens) per stream."""
    tokens = sum(r[2] for r in results)
    gaps = [g for r in results for g in r[1]]
    return {
        "tok_s": tokens / wall,
        "ttft_p50": _pct([r[0] for r in results], 50) * 1000,
        "ttft_p99": _pct([r[0] for r in results], 99) * 1000,
        "itl_ms": (statistics.mean(gaps) * 1000) if gaps else float("nan"),
        "tokens": tokens,
    }


def random_llama(folder: Path, tokenizer_from: Path | None) -> Path:
    """A TinyLlama-1.1B-shaped model with random bf16 weights (plus a tokenizer for the engine)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from) if tokenizer_from else None
    config = LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=len(tokenizer) if tokenizer else 32000,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id if tokenizer else 2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    if tokenizer:
        tokenizer.save_pretrained(folder)
    return folder


async def engine_level(engine: Any, concurrency: int, tokens: int) -> dict[str, float]:
    from kosmos.genai.engines.base import SamplingParams

    prompt = engine.encode_chat([{"role": "user", "content": PROMPT}])
    params = SamplingParams(max_tokens=tokens, temperature=1.0)

    async def one() -> tuple[float, list[float], int]:
        started = time.perf_counter()
        stamps: list[float] = []
        count = 0
        async for delta in engine.generate(prompt, params):
            stamps.append(time.perf_counter())
            count = delta.completion_tokens
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        return stamps[0] - started, gaps, count

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(concurrency)))
    return _summary(list(results), time.perf_counter() - started)


async def endpoint_level(
    base: str, token: str, model: str, concurrency: int, tokens: int
) -> dict[str, float]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base, api_key=token, max_retries=0, timeout=600)

    async def one() -> tuple[float, list[float], int]:
        started = time.perf_counter()
        stamps: list[float] = []
        usage = 0
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=tokens,
            temperature=1.0,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage.completion_tokens
            elif chunk.choices and chunk.choices[0].delta.content:
                stamps.append(time.perf_counter())
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        return (stamps[0] - started) if stamps else float("nan"), gaps, usage

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(concurrency)))
    await client.close()
    return _summary(list(results), time.perf_counter() - started)


def plain_generate(folder: Path, device: str, batch: int, tokens: int, prompt_len: int) -> float:
    """tokens/s of ``model.generate`` on a batch of prompts as long as the engine's (the reference);
    the warm-up generates as many tokens as the measured call, so no allocation is timed."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(device).eval()
    ids = torch.randint(0, model.config.vocab_size - 1, (batch, prompt_len), device=device)
    kwargs = {
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,
        "do_sample": False,
        "attention_mask": torch.ones_like(ids),
    }
    with torch.inference_mode():
        model.generate(ids, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        model.generate(ids, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * tokens / (time.perf_counter() - started)


def _print(title: str, rows: dict[str, dict[int, dict[str, float]]], levels: list[int]) -> None:
    print(f"\n{title}")
    header = f"{'path':<28} {'streams':>7} {'tok/s':>8} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12}"
    print(f"{header} {'ITL ms':>8} {'x/a':>6}")
    for label, by_level in rows.items():
        for n in levels:
            r = by_level[n]
            ratio = ""
            if not label.startswith("(a)") and A in rows:
                ratio = f"{r['tok_s'] / rows[A][n]['tok_s']:.2f}"
            print(
                f"{label:<28} {n:>7} {r['tok_s']:>8.1f} {r['ttft_p50']:>12.1f} {r['ttft_p99']:>12.1f} "
                f"{r['itl_ms']:>8.1f} {ratio:>6}"
            )


A, B, C = "(a) vLLM in-process", "(b) transformers engine", "(c) Kosmos endpoint, vLLM"


def vllm_in_process(
    folder: Path,
    engine_args: dict[str, Any],
    kv_gib: int,
    bind: str,
    prompt_ids: list[int],
    levels: list[int],
    tokens: int,
):
    """(a): bench/_vllm_engine.py in the CPU engine environment's interpreter."""
    import subprocess

    from kosmos.genai.engines.vllm_server import vllm_python

    job = {"model": str(folder), "engine_args": engine_args, "prompt_ids": prompt_ids, "levels": levels}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_gib)  # as the Kosmos engine sizes it (else 92% of RAM)
    env["VLLM_CPU_OMP_THREADS_BIND"] = bind
    out = subprocess.run(
        [str(vllm_python()), str(ROOT / "bench" / "_vllm_engine.py"), json.dumps({**job, "tokens": tokens})],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    return {int(n): _summary([tuple(r) for r in v["results"]], v["wall"]) for n, v in raw.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine-only", action="store_true", help="(b) alone: no platform, no vLLM here")
    parser.add_argument("--model", choices=["smollm2", "llama-1.1b"], default="smollm2")
    parser.add_argument("--tokenizer", type=Path, help="llama-1.1b: a folder holding a tokenizer to use")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per stream")
    parser.add_argument("--paths", default="a,b,c", help="which of (a), (b), (c) to run")
    parser.add_argument("--vllm-bind", default="auto", help="VLLM_CPU_OMP_THREADS_BIND for (a) and (c)")
    args = parser.parse_args()
    paths = set(args.paths.split(","))
    levels = [int(n) for n in args.levels.split(",")]
    from kosmos.genai.engines.transformers_engine import TransformersEngine
    from kosmos.genai.engines.vllm import engine_kwargs
    from kosmos.genai.spec import LLMSpec

    work = Path(tempfile.mkdtemp(prefix="kosmos-llm-bench-"))
    if args.model == "smollm2":
        from kosmos.genai.models import default_llm_folder

        folder = default_llm_folder(work / "cache")
    else:
        folder = random_llama(work / "llama", args.tokenizer)
    common = {
        "max_num_seqs": max(levels),
        "max_model_len": 1024,
        "num_gpus": 1 if args.device == "cuda" else 0,
    }
    if args.engine_only:  # a machine without Kosmos installed has no engine entry points to validate against
        spec = LLMSpec.model_construct(engine="transformers", **common)
    else:
        spec = LLMSpec(engine="transformers", **common)
        vllm_spec = LLMSpec(engine="vllm", **{**common, "num_gpus": 0})
    rows: dict[str, dict[int, dict[str, float]]] = {}
    prompt_ids: list[int] = []

    async def run_engine() -> None:
        engine = TransformersEngine(folder, spec)
        await engine.start()
        prompt_ids.extend(engine.encode_chat([{"role": "user", "content": PROMPT}]))
        await engine_level(engine, 2, 4)  # warm-up
        rows[B] = {n: await engine_level(engine, n, args.tokens) for n in levels}
        await engine.stop()

    if not args.engine_only and "a" in paths:
        from transformers import AutoTokenizer

        from kosmos.genai.engines.transformers_engine import chat_ids

        ids = chat_ids(AutoTokenizer.from_pretrained(folder), [{"role": "user", "content": PROMPT}])
        kwargs = {**engine_kwargs(vllm_spec, gpu=False), "max_model_len": 1024}
        from kosmos.genai.engines.vllm_server import kv_cache_gib

        kv_gib = kv_cache_gib(vllm_spec, json.loads((folder / "config.json").read_text()), 1024)
        rows[A] = vllm_in_process(folder, kwargs, kv_gib, args.vllm_bind, ids, levels, args.tokens)
        print(json.dumps({"(a)": rows[A], "prompt_tokens": len(ids)}), flush=True)
    if args.engine_only or "b" in paths:
        asyncio.run(run_engine())
        print(json.dumps({"(b)": rows[B], "prompt_tokens": len(prompt_ids)}), flush=True)
    if not args.engine_only and "c" in paths:
        import httpx

        serve_port = free_port()
        platform = start_platform(
            work / "home",
            KOSMOS_RAY__SERVE_PORT=str(serve_port),
            KOSMOS_LLM__VLLM_CPU_THREADS_BIND=args.vllm_bind,
        )
        url, token, headers = platform.url, platform.token, platform.headers
        deployments = f"{url}/api/v1/projects/demo/deployments"
        try:
            httpx.delete(f"{deployments}/assistant-llm", headers=headers)  # one engine on the machine
            spec_body = {
                "name": "bench-llm",
                "model": "smollm2-135m-instruct",
                "llm": vllm_spec.model_dump(exclude_defaults=True),
                "num_cpus": 0.25,
            }
            httpx.post(deployments, json=spec_body, headers=headers).raise_for_status()
            deadline = time.monotonic() + 900
            while (state := httpx.get(f"{deployments}/bench-llm", headers=headers).json())[
                "status"
            ] != "healthy":
                if state["status"] == "failed" or time.monotonic() > deadline:
                    raise RuntimeError(f"bench-llm did not become healthy: {state['reason']}")
                time.sleep(2)
            base = f"http://127.0.0.1:{serve_port}/demo/openai/v1"  # the data plane
            asyncio.run(endpoint_level(base, token, "bench-llm", 2, 4))  # warm-up
            rows[C] = {
                n: asyncio.run(endpoint_level(base, token, "bench-llm", n, args.tokens)) for n in levels
            }
        finally:
            platform.stop()
    device = args.device
    if device == "cuda":
        import torch

        device_name = torch.cuda.get_device_name()
    else:
        device_name = f"{os.cpu_count()} CPU cores"
    title = f"LLM serving, {args.model}, {args.tokens} new tokens per stream, {device_name}"
    _print(f"{title}, vLLM threads bind {args.vllm_bind}", rows, levels)
    if args.engine_only:
        for batch in (1, 32):
            rate = plain_generate(folder, device, batch, args.tokens, len(prompt_ids))
            print(f"plain generate, batch {batch}, {len(prompt_ids)}-token prompts: {rate:.1f} tok/s")
    elif {A, B} <= set(rows) and 32 in levels:
        print(f"a/b at 32 streams: {rows[A][32]['tok_s'] / rows[B][32]['tok_s']:.2f}")
    print(
        "goals: c/a >= 0.9 and a/b >= 5 at 32 streams; (c) TTFT p50 < 1 s at 8; GPU: b >= 3x plain generate"
    )


if __name__ == "__main__":
    main()
