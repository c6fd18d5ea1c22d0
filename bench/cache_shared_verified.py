"""The semantic cache of issue 20: the learned verifier's quality, the hit path at 10k and 100k
realistic entries on both indexes (verifier included), and two processes sharing a namespace.

    .venv/bin/python bench/cache_shared_verified.py               # all three (about 15 min)
    .venv/bin/python bench/cache_shared_verified.py --quality     # only the verifier (about 1 min)

Quality: the verifier is fitted exactly as ``kosmos cache train-verifier`` fits it (generated
pairs, ``kosmos.genai.verifier.train.fit``), then every labelled set in ``bench/data`` is scored:
the shipped defaults (cosine 0.7 + guard) beside the verifier, with and without the guard, over
its minimum probability (the curve). ``cache_pairs_verifier_heldout.tsv`` was written before the
verifier existed and nothing was chosen on it.

Latency: a namespace filled with *realistic* questions: every question of the labelled sets,
then variants of them (greetings, context, channel and urgency added around the question; no
random vectors), so the neighbours of a lookup are near-duplicates, as in a busy cache. The
lookups are the tuning set's paraphrases. Indexes: ``memory`` (SQLite metadata, the embedded
default) and ``pgvector`` (PostgreSQL metadata on 127.0.0.1, pgvector from pgserver's binaries).

Sharing: process A stores the tuning set's questions, process B (another Python process, its own
index object and connections) looks up their paraphrases.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
SETS = ["cache_pairs.tsv", "cache_pairs_heldout.tsv", "cache_pairs_verifier_heldout.tsv"]
PREFIXES = ["", "Hi, ", "Hello! ", "Quick question: ", "Sorry to bother you, ", "Good morning. "]
PREFIXES += ["Hey there, ", "I have a question. ", "Can you help? ", "Urgent: "]
SUFFIXES = ["", " Thanks.", " Thank you!", " I'm on the mobile app.", " I'm using the website."]
SUFFIXES += [" It's urgent.", " for my business account", " while traveling", " today", " right now"]


def pairs(name: str) -> list[dict[str, str]]:
    with (ROOT / "data" / name).open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def encoder():
    from kosmos.genai.embeddings import local_encoder

    encode = local_encoder()
    return lambda texts: np.vstack([encode(texts[i : i + 64]) for i in range(0, len(texts), 64)])


def quality() -> None:
    from kosmos.genai.cache_guard import meaning_differs
    from kosmos.genai.verifier.features import feature_frame
    from kosmos.genai.verifier.train import fit, generated_pairs

    embed = encoder()
    started = time.perf_counter()
    model = fit(generated_pairs(), embed)
    print(f"\n## Verifier quality (fitted in {time.perf_counter() - started:.0f} s on generated pairs)")
    for name in SETS:
        rows = pairs(name)
        a, b = [p["a"] for p in rows], [p["b"] for p in rows]
        features = feature_frame(a, b, embed(a), embed(b))
        probability = model.predict_proba(features)[:, 1]
        cosine = features["cosine"].to_numpy()
        guard = np.array([meaning_differs(p["b"], p["a"]) is None for p in rows])
        hit = np.array([p["label"] == "hit" for p in rows])
        print(f"\n### {name}: {hit.sum()} paraphrases, {(~hit).sum()} near-misses\n")
        print("| rule | paraphrase hits | false hits |")
        print("| --- | --- | --- |")
        for floor in (0.5, 0.6, 0.7, 0.8, 0.9):  # the reference at every threshold, not only its default
            served = (cosine >= floor) & guard
            label = "shipped default: " if floor == 0.7 else ""
            rates = f"{served[hit].mean():.1%} | {served[~hit].mean():.1%}"
            print(f"| {label}cosine >= {floor} + guard | {rates} |")
        for floor in (0.5, 0.7):
            for bar in (0.5, 0.6, 0.7, 0.8, 0.9):
                for with_guard in (True, False):
                    served = (cosine >= floor) & (probability >= bar) & (guard | (not with_guard))
                    label = f"cosine >= {floor} + verifier p >= {bar}" + (" + guard" if with_guard else "")
                    print(f"| {label} | {served[hit].mean():.1%} | {served[~hit].mean():.1%} |")
        served = (cosine >= 0.5) & (probability >= 0.5) & guard
        kinds = sorted({p["kind"] for p in rows} - {"paraphrase"})
        by_kind = ", ".join(
            f"{k} {int(served[np.array([p['kind'] == k for p in rows])].sum())}" for k in kinds
        )
        print(f"\nFalse hits by kind (cosine >= 0.5, p >= 0.5, guard): {by_kind}")


def realistic(n: int) -> list[str]:
    """``n`` distinct questions: the labelled sets' own, then variants of them; never the
    paraphrases the latency part looks up, so a hit is a paraphrase hit, not an exact one."""
    looked_up = {p["b"] for p in pairs("cache_pairs.tsv") if p["label"] == "hit"}
    questions = (q for name in SETS for p in pairs(name) for q in (p["a"], p["b"]))
    base = list(dict.fromkeys(q for q in questions if q not in looked_up))
    out = list(base)
    for prefix in PREFIXES:
        for suffix in SUFFIXES:
            for q in base:
                if len(out) >= n:
                    return out
                if prefix or suffix:
                    body = q[0].lower() + q[1:] if prefix.endswith((", ", ": ")) else q
                    if suffix[1:2].isupper():  # a sentence after the question
                        body = body + suffix
                    elif suffix:  # a phrase inside it
                        body = body.rstrip("?") + suffix + "?"
                    out.append(prefix + body)
    raise ValueError(f"only {len(out)} variants; add prefixes or suffixes")


def embeddings(texts: list[str]) -> np.ndarray:
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"kosmos-bench-embeddings-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = encoder()(texts)
    np.save(path, vectors)
    return vectors


def _pg_database() -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _pgvector(folder: Path) -> str:
    import pgserver

    server = pgserver.get_server(folder, cleanup_mode="stop")
    return f"postgresql+psycopg://postgres@/postgres?host={server.get_postmaster_info().socket_dir}"


def latency(sizes: tuple[int, ...], indexes: tuple[str, ...], verifier_model=None) -> None:
    from semantic_cache import _fill  # the existing bench's bulk insert

    from kosmos.genai.semantic_cache import Partition, SemanticCache
    from kosmos.genai.verifier.model import Verifier
    from kosmos.platform.bootstrap import bootstrap
    from kosmos.platform.db.engine import Database
    from kosmos.platform.settings import CacheSettings, Settings

    lookups = [p for p in pairs("cache_pairs.tsv") if p["label"] == "hit"]
    embed = encoder()
    print("\n## Hit path on realistic entries (embed + search + fetch + guard + verifier)\n")
    print("| index | entries | fill + index build s | p50 ms | p99 ms | hits |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        texts = realistic(n)
        vectors = embeddings(texts)
        for index in indexes:
            with tempfile.TemporaryDirectory() as tmp:
                if index == "memory":
                    url, index_url = f"sqlite:///{tmp}/kosmos.db", None
                else:
                    url, index_url = _pg_database(), _pgvector(Path(tmp) / "pgvector")
                settings = Settings(home=Path(tmp), database={"url": url})
                database = Database(url)
                bootstrap(settings, database)
                config = CacheSettings(max_entries=10 * n, index=index, index_url=index_url)
                cache = SemanticCache(database, config, embed=lambda t: embed(t))
                if verifier_model is not None:
                    cache.verifier = Verifier(verifier_model, 0.5)
                namespace = cache.namespace(Partition(project_id=1, model="assistant-llm", model_version="1"))
                started = time.perf_counter()
                _fill(database, namespace.id, n, list(zip(texts, vectors, strict=True)))
                if hasattr(cache.index, "fill"):
                    cache.index.fill(namespace.id)  # copies the entries and builds the HNSW index
                cache.index.size(namespace.id)  # loads the namespace (memory)
                build = time.perf_counter() - started
                total, hits = [], 0
                for _ in range(3):
                    for p in lookups:
                        t0 = time.perf_counter()
                        found = cache.lookup(namespace, p["b"], cache.embed(p["b"]))
                        total.append((time.perf_counter() - t0) * 1000)
                        hits += found.hit
                cache.flush_hits()
                p50, p99 = np.percentile(total, 50), np.percentile(total, 99)
                print(f"| {index} | {n:,} | {build:.0f} | {p50:.2f} | {p99:.2f} | {hits / len(total):.0%} |")
                database.dispose()


_SECOND = """
import json, sys, time
import numpy as np
sys.path.insert(0, {bench!r})
from cache_shared_verified import pairs, encoder
from kosmos.genai.semantic_cache import Partition, SemanticCache
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import CacheSettings
embed = encoder()
cache = SemanticCache(Database({url!r}), CacheSettings(index={index!r}, index_url={index_url!r}), embed=embed)
ns = cache.namespace(Partition(project_id=1, model="assistant-llm", model_version="1"))
cache.lookup(ns, "warm-up", cache.embed("warm-up"))  # B has seen the namespace before A stores
print("ready", flush=True)
sys.stdin.readline()
rows = [p for p in pairs("cache_pairs.tsv") if p["label"] == "hit"]
hits = sum(cache.lookup(ns, p["b"], cache.embed(p["b"])).hit for p in rows)
print(json.dumps({{"hits": hits, "lookups": len(rows)}}), flush=True)
"""


def sharing(indexes: tuple[str, ...]) -> None:
    import json

    from kosmos.genai.semantic_cache import Partition, SemanticCache
    from kosmos.platform.bootstrap import bootstrap
    from kosmos.platform.db.engine import Database
    from kosmos.platform.settings import CacheSettings, Settings

    embed = encoder()
    stored = [p for p in pairs("cache_pairs.tsv") if p["label"] == "hit"]
    print("\n## Two processes, one namespace: B's hit rate on what A stored\n")
    print("| index | A stored | B looked up | B's hits | B alone, same process as A (reference) |")
    print("| --- | --- | --- | --- | --- |")
    for index in indexes:
        with tempfile.TemporaryDirectory() as tmp:
            url = _pg_database()
            index_url = _pgvector(Path(tmp) / "pgvector") if index == "pgvector" else None
            database = Database(url)
            bootstrap(Settings(home=Path(tmp), database={"url": url}), database)
            code = _SECOND.format(bench=str(ROOT), url=url, index=index, index_url=index_url)
            second = subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert second.stdout is not None and second.stdin is not None
            assert second.stdout.readline().strip() == "ready"
            cache = SemanticCache(database, CacheSettings(index=index, index_url=index_url), embed=embed)
            ns = cache.namespace(Partition(project_id=1, model="assistant-llm", model_version="1"))
            answer = {"text": "an answer", "finish_reason": "stop", "usage": {"completion_tokens": 3}}
            for p in stored:
                cache.store(ns, p["a"], cache.embed(p["a"]), answer)
            second.stdin.write("go\n")
            second.stdin.flush()
            result = json.loads(second.stdout.readline())
            second.wait(timeout=60)
            own = sum(cache.lookup(ns, p["b"], cache.embed(p["b"])).hit for p in stored)
            print(
                f"| {index} | {len(stored)} | {result['lookups']} | {result['hits'] / result['lookups']:.0%} "
                f"| {own / len(stored):.0%} |"
            )
            database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality", action="store_true", help="Only the verifier's quality.")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--indexes", default="memory,pgvector")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    quality()
    if args.quality:
        return
    indexes = tuple(args.indexes.split(","))
    sharing(indexes)
    from kosmos.genai.verifier.train import fit, generated_pairs

    latency(tuple(int(s) for s in args.sizes.split(",")), indexes, fit(generated_pairs(), encoder()))


if __name__ == "__main__":
    main()
