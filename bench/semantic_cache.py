"""The semantic cache: answer quality on labelled question pairs, and hit-path latency at 10k/100k entries.

    .venv/bin/python bench/semantic_cache.py            # both parts
    .venv/bin/python bench/semantic_cache.py --quality  # only the pairs (about 30 s)

Quality: ``bench/data/cache_pairs.tsv`` holds 334 pairs written for this benchmark:
paraphrases that should hit, and near-misses that must not (negation, other entities,
numbers, products, directions, dates, other actions). Each pair is embedded with
all-minilm-l6-v2; a plain cosine threshold (what GPTCache and RedisVL do by default) is
compared with the Kosmos cache (the same threshold plus the false-hit guard), at the
default threshold and over a curve. Goal (issue 7): false hits <= 1% with paraphrase
hits >= 70%.

Latency: the embedded cache (SQLite metadata database, in-process index) filled with
10k and 100k entries in one namespace; p50/p99 of the hit path (embed + search + fetch
and verify) against the default model answering the same question (a miss).
Goal: p99 <= 15 ms at 100k entries on the 2-core machine.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


SETS = {
    "cache_pairs.tsv": "tuning set: the guard's word lists were adjusted while looking at it",
    "cache_pairs_heldout.tsv": "held-out set: written after the guard was frozen, never tuned on",
    "cache_pairs_verifier_heldout.tsv": "verifier held-out set (issue 20): 318 pairs in new domains, "
    "with role swaps, antonyms, units and metrics; written before the verifier was trained, never tuned on",
}


def load_pairs(name: str) -> list[dict[str, str]]:
    with (ROOT / "data" / name).open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def quality(threshold: float, name: str) -> None:
    from kosmos.genai.cache_guard import meaning_differs
    from kosmos.genai.embeddings import local_encoder

    pairs = load_pairs(name)
    print(f"\n## {name} ({SETS[name]})")
    encode = local_encoder()
    a = encode([p["a"] for p in pairs])
    b = encode([p["b"] for p in pairs])
    cosine = (a * b).sum(axis=1)
    guard_ok = np.array([meaning_differs(p["b"], p["a"]) is None for p in pairs])
    hit = np.array([p["label"] == "hit" for p in pairs])
    print(f"\n{len(pairs)} pairs: {hit.sum()} paraphrases, {(~hit).sum()} near-misses")
    print(
        f"median cosine: paraphrases {np.median(cosine[hit]):.3f}, near-misses {np.median(cosine[~hit]):.3f}"
    )
    print("\n| threshold | cosine: paraphrase hits | cosine: false hits | Kosmos: paraphrase hits ", end="")
    print("| Kosmos: false hits |")
    print("| --- | --- | --- | --- | --- |")
    for t in THRESHOLDS:
        above = cosine >= t
        mark = " (default)" if abs(t - threshold) < 1e-9 else ""
        print(
            f"| {t:.2f}{mark} | {above[hit].mean():.1%} | {above[~hit].mean():.1%} "
            f"| {(above & guard_ok)[hit].mean():.1%} | {(above & guard_ok)[~hit].mean():.1%} |"
        )
    above = cosine >= threshold
    print(f"\nAt {threshold}: false hits by kind (plain cosine -> Kosmos)")
    print("| kind | pairs | cosine false hits | Kosmos false hits |")
    print("| --- | --- | --- | --- |")
    kinds = sorted({p["kind"] for p in pairs if p["label"] == "miss"})
    for kind in kinds:
        sel = np.array([p["kind"] == kind for p in pairs])
        print(f"| {kind} | {sel.sum()} | {above[sel].sum()} | {(above & guard_ok)[sel].sum()} |")
    lost = [p for p, h, ab, g in zip(pairs, hit, above, guard_ok, strict=True) if h and ab and not g]
    leaked = [p for p, h, ab, g in zip(pairs, hit, above, guard_ok, strict=True) if not h and ab and g]
    print(f"\nparaphrases the guard refused: {len(lost)}; near-misses that still hit: {len(leaked)}")
    for p in leaked:
        print(f"  false hit ({p['kind']}): {p['a']!r} ~ {p['b']!r}")
    for p in lost[:10]:
        print(f"  refused paraphrase ({meaning_differs(p['b'], p['a'])}): {p['a']!r} ~ {p['b']!r}")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _fill(database, namespace_id: int, n: int, real: list[tuple[str, np.ndarray]]) -> None:
    """``n`` entries: the real questions first, then random unit vectors (bulk insert)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from kosmos.genai.models_db import CacheEntry
    from kosmos.genai.semantic_cache import _checksum

    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        if i < len(real):
            query, vector = real[i]
        else:
            vector = rng.standard_normal(384).astype(np.float32)
            vector /= np.linalg.norm(vector)
            query = f"synthetic question {i}"
        raw = vector.astype(np.float32).tobytes()
        answer = {
            "text": f"answer {i}",
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 20, "completion_tokens": 40},
        }
        rows.append(
            {"namespace_id": namespace_id, "query": query, "vector": raw, "checksum": _checksum(raw, answer),
             "answer": answer, "created_at": now, "expires_at": now + timedelta(days=1), "last_used_at": now,
             "hits": 0}
        )  # fmt: skip
        if len(rows) == 5000 or i == n - 1:
            with database.transaction() as session:
                session.execute(insert(CacheEntry), rows)
            rows = []


def _miss_seconds(home: Path, questions: list[str]) -> list[float]:
    """The default model answering (64 tokens at most, greedy), in process: what a miss costs."""
    import asyncio

    from kosmos.genai.engines.base import SamplingParams
    from kosmos.genai.engines.transformers_engine import TransformersEngine
    from kosmos.genai.models import default_llm_folder
    from kosmos.genai.spec import LLMSpec

    folder = default_llm_folder(home / "model-cache")
    spec = LLMSpec(engine="transformers", max_num_seqs=4, max_model_len=1024, default_max_tokens=64)

    async def run() -> list[float]:
        engine = TransformersEngine(folder, spec)
        await engine.start()
        out = []
        for q in questions:
            ids = engine.encode_chat([{"role": "user", "content": q}])
            started = time.perf_counter()
            async for _ in engine.generate(ids, SamplingParams(max_tokens=64, temperature=0)):
                pass
            out.append(time.perf_counter() - started)
        await engine.stop()
        return out

    return asyncio.run(run())


def latency(sizes: tuple[int, ...] = (10_000, 100_000)) -> None:
    from kosmos.genai.embeddings import local_encoder
    from kosmos.genai.semantic_cache import Partition, SemanticCache
    from kosmos.platform.bootstrap import bootstrap
    from kosmos.platform.db.engine import Database
    from kosmos.platform.settings import CacheSettings, Settings

    pairs = [p for p in load_pairs("cache_pairs.tsv") if p["label"] == "hit"]
    encode = local_encoder()
    stored = encode([p["a"] for p in pairs])
    print("\n## Hit-path latency (embedded profile: SQLite metadata database, in-process index)")
    print("\n| entries | index load s | embed p50 ms | lookup p50 ms | hit path p50 ms ", end="")
    print("| hit path p99 ms | hits |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    results = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(home=Path(tmp), database={"url": f"sqlite:///{tmp}/kosmos.db"})
            database = Database(settings.database_url)
            bootstrap(settings, database)
            cache = SemanticCache(database, CacheSettings(max_entries=10 * n), embed=encode)
            namespace = cache.namespace(Partition(project_id=1, model="assistant-llm", model_version="1"))
            _fill(database, namespace.id, n, [(p["a"], v) for p, v in zip(pairs, stored, strict=True)])
            started = time.perf_counter()
            cache.index.size(namespace.id)  # the first touch loads the namespace from the database
            load = time.perf_counter() - started
            embed_ms, lookup_ms, total_ms, hits = [], [], [], 0
            for _ in range(3):
                for p in pairs:
                    t0 = time.perf_counter()
                    vector = cache.embed(p["b"])
                    t1 = time.perf_counter()
                    found = cache.lookup(namespace, p["b"], vector)
                    t2 = time.perf_counter()
                    embed_ms.append((t1 - t0) * 1000)
                    lookup_ms.append((t2 - t1) * 1000)
                    total_ms.append((t2 - t0) * 1000)
                    hits += found.hit
            cache.flush_hits()
            results[n] = total_ms
            print(
                f"| {n:,} | {load:.2f} | {_pct(embed_ms, 50):.2f} | {_pct(lookup_ms, 50):.2f} "
                f"| {_pct(total_ms, 50):.2f} | {_pct(total_ms, 99):.2f} | {hits / len(total_ms):.0%} |"
            )
            database.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        miss = _miss_seconds(Path(tmp), [p["a"] for p in pairs[:8]])
    miss_ms = statistics.median(miss) * 1000
    largest = max(sizes)
    p99 = _pct(results[largest], 99)
    print(f"\nA miss answered by the default model (SmolLM2-135M, 64 tokens, greedy), p50: {miss_ms:.0f} ms")
    print(
        f"Hit path p50 at {largest:,} entries: {_pct(results[largest], 50):.2f} ms "
        f"({miss_ms / _pct(results[largest], 50):.0f}x faster than the miss)"
    )
    print(f"Goal p99 <= 15 ms at {largest:,} entries: {p99:.2f} ms -> {'met' if p99 <= 15 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality", action="store_true", help="Only the labelled pairs.")
    parser.add_argument("--threshold", type=float, default=None, help="Default: gateway.cache.threshold.")
    args = parser.parse_args()
    from kosmos.platform.settings import CacheSettings

    threshold = args.threshold or CacheSettings().threshold
    for name in SETS:
        quality(threshold, name)
    if not args.quality:
        latency()


if __name__ == "__main__":
    main()
