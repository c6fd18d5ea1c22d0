"""(a) of bench/llm_serving.py: vLLM's own async engine in-process, run by the CPU engine
environment's interpreter (.venv-vllm/bin/python). Prints one JSON line of results.

    .venv-vllm/bin/python bench/_vllm_engine.py '{"model": ..., "prompt_ids": [...], ...}'
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import uuid


async def main(job: dict) -> dict:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.inputs import TokensPrompt
    from vllm.v1.engine.async_llm import AsyncLLM

    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=job["model"], **job["engine_args"]))
    prompt = TokensPrompt(prompt_token_ids=job["prompt_ids"])

    async def one(tokens: int) -> tuple[float, list[float], int]:
        params = SamplingParams(max_tokens=tokens, temperature=1.0)
        started, stamps, count = time.perf_counter(), [], 0
        async for out in engine.generate(prompt, params, request_id=uuid.uuid4().hex):
            stamps.append(time.perf_counter())
            count = len(out.outputs[0].token_ids)
        return stamps[0] - started, [b - a for a, b in itertools.pairwise(stamps)], count

    async def level(n: int, tokens: int) -> dict:
        started = time.perf_counter()
        results = await asyncio.gather(*(one(tokens) for _ in range(n)))
        return {"results": results, "wall": time.perf_counter() - started}

    await level(2, 4)  # warm-up, as for the other paths
    out = {str(n): await level(n, job["tokens"]) for n in job["levels"]}
    engine.shutdown()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
