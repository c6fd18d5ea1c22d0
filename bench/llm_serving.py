"""LLM serving: the bare transformers engine in-process vs. the Kosmos OpenAI endpoint, by concurrency.

    .venv/bin/python bench/llm_serving.py                      # CPU: SmolLM2-135M, (a) and (b)
    python3 bench/llm_serving.py --engine-only --model llama-1.1b --device cuda   # GPU machine

(a) the engine in-process (kosmos.genai.engines.transformers_engine, continuous batching);
(b) the same model deployed by `kosmos up` on Ray Serve, called with the openai client,
    streaming. Each stream asks for --tokens new tokens. Prints tokens/s, time to first
    token (TTFT) p50/p99 and inter-token latency (ITL) per concurrency, and b/a.
--engine-only skips (b) (a GPU machine without the platform) and adds plain
`model.generate` at batch 1 and 32 as the reference. `--model llama-1.1b` is a
TinyLlama-1.1B-shaped LlamaConfig with random weights in bf16 (speed only).

Goal (issue 6): b/a >= 0.9 at 32 concurrent streams; on an H100, the engine >= 3x plain
generate at batch 32 and >= 30% of the memory-bandwidth bound at batch 1.
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

PROMPT = "Write a long story about a detective who catches a credit card fraud ring."


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


def plain_generate(folder: Path, device: str, batch: int, tokens: int) -> float:
    """tokens/s of ``model.generate`` on a batch of identical prompts (the reference)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(device).eval()
    ids = torch.randint(0, model.config.vocab_size - 1, (batch, 32), device=device)
    kwargs = {
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,
        "do_sample": False,
        "attention_mask": torch.ones_like(ids),
    }
    with torch.inference_mode():
        model.generate(ids, **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})
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
    print(f"{header} {'ITL ms':>8} {'b/a':>6}")
    for label, by_level in rows.items():
        for n in levels:
            r = by_level[n]
            ratio = ""
            if label.startswith("(b)"):
                ratio = f"{r['tok_s'] / rows['(a) engine in-process'][n]['tok_s']:.2f}"
            print(
                f"{label:<28} {n:>7} {r['tok_s']:>8.1f} {r['ttft_p50']:>12.1f} {r['ttft_p99']:>12.1f} "
                f"{r['itl_ms']:>8.1f} {ratio:>6}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine-only", action="store_true", help="skip (b): no platform on this machine")
    parser.add_argument("--model", choices=["smollm2", "llama-1.1b"], default="smollm2")
    parser.add_argument("--tokenizer", type=Path, help="llama-1.1b: a folder holding a tokenizer to use")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per stream")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    from kosmos.genai.engines.transformers_engine import TransformersEngine
    from kosmos.genai.spec import LLMSpec

    work = Path(tempfile.mkdtemp(prefix="kosmos-llm-bench-"))
    if args.model == "smollm2":
        from kosmos.genai.models import default_llm_folder

        folder = default_llm_folder(work / "cache")
    else:
        folder = random_llama(work / "llama", args.tokenizer)
    spec = LLMSpec(
        engine="transformers",
        max_num_seqs=max(levels),
        max_model_len=1024,
        num_gpus=1 if args.device == "cuda" else 0,
    )
    rows: dict[str, dict[int, dict[str, float]]] = {"(a) engine in-process": {}}

    async def run_engine() -> None:
        engine = TransformersEngine(folder, spec)
        await engine.start()
        await engine_level(engine, 2, 4)  # warm-up
        for n in levels:
            rows["(a) engine in-process"][n] = await engine_level(engine, n, args.tokens)
        await engine.stop()

    asyncio.run(run_engine())
    print(json.dumps({"(a)": rows["(a) engine in-process"]}), flush=True)  # kept if (b) fails
    if not args.engine_only:
        import httpx

        serve_port = free_port()
        platform = start_platform(work / "home", KOSMOS_RAY__SERVE_PORT=str(serve_port))
        url, token, headers = platform.url, platform.token, platform.headers
        try:
            spec_body = {
                "name": "bench-llm",
                "model": "smollm2-135m-instruct",
                "llm": spec.model_dump(exclude_defaults=True),
                "num_cpus": 0.25,
            }
            httpx.post(
                f"{url}/api/v1/projects/demo/deployments", json=spec_body, headers=headers
            ).raise_for_status()
            deadline = time.monotonic() + 600
            while (
                state := httpx.get(
                    f"{url}/api/v1/projects/demo/deployments/bench-llm", headers=headers
                ).json()
            )["status"] != "healthy":
                if state["status"] == "failed" or time.monotonic() > deadline:
                    raise RuntimeError(f"bench-llm did not become healthy: {state['reason']}")
                time.sleep(2)
            base = f"http://127.0.0.1:{serve_port}/demo/openai/v1"  # the data plane (issue 17)
            rows["(b) Kosmos OpenAI endpoint"] = {}
            asyncio.run(endpoint_level(base, token, "bench-llm", 2, 4))  # warm-up
            for n in levels:
                rows["(b) Kosmos OpenAI endpoint"][n] = asyncio.run(
                    endpoint_level(base, token, "bench-llm", n, args.tokens)
                )
        finally:
            platform.stop()
    device = args.device
    if device == "cuda":
        import torch

        device_name = torch.cuda.get_device_name()
    else:
        device_name = f"{os.cpu_count()} CPU cores"
    _print(f"LLM serving, {args.model}, {args.tokens} new tokens per stream, {device_name}", rows, levels)
    if args.engine_only:
        for batch in (1, 32):
            rate = plain_generate(folder, device, batch, args.tokens)
            print(f"plain generate, batch {batch}: {rate:.1f} tok/s")
    print("goals: b/a >= 0.9 at 32 streams; GPU: engine >= 3x plain generate at batch 32")


if __name__ == "__main__":
    main()
