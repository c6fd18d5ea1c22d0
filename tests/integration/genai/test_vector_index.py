"""The vector-index contract, run against every backend (the embedded one and PostgreSQL + pgvector,
a real server), and what the shared backend adds: several caches (replicas) see one index, and the
engine going down makes misses, never errors or wrong answers, until it comes back."""

from __future__ import annotations

import time

import numpy as np
import pytest

from kosmos.genai.semantic_cache import Partition, SemanticCache
from kosmos.genai.vector_index import INDEXES, IndexUnavailable, index_class
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import CacheSettings

QUESTION = "How do I reset my password?"
ANSWER = {"text": "Use the reset link.", "finish_reason": "stop", "usage": {"completion_tokens": 5}}


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=sorted(INDEXES))
def make_index(request):
    stored: dict[int, tuple[list[int], np.ndarray]] = {}
    url = request.getfixturevalue("pgvector_url") if request.param == "pgvector" else None

    def make():
        loader = lambda ns: stored.get(ns, ([], np.zeros((0, 384))))  # noqa: E731
        return index_class(request.param)(loader, 384, url=url), stored

    return make


def test_index_contract_add_search_remove_drop_and_reload(make_index) -> None:
    rng = np.random.default_rng(1)
    index, stored = make_index()
    vectors = _unit(rng, 50)
    index.add(1, list(range(100, 150)), vectors)
    index.add(2, [7], vectors[:1])
    assert index.size(1) == 50 and index.size(2) == 1 and index.size(3) == 0
    top = index.search(1, vectors[3], 3)
    assert top[0][0] == 103 and top[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    index.remove(1, [103, 999])
    assert 103 not in {i for i, _ in index.search(1, vectors[3], 5)} and index.size(1) == 49
    assert index.search(2, vectors[3], 5) == [(7, pytest.approx(float(vectors[0] @ vectors[3]), abs=1e-5))]
    index.add(2, [7], vectors[4:5])  # replaces, never duplicates
    assert index.size(2) == 1 and index.search(2, vectors[4], 1)[0][1] == pytest.approx(1.0, abs=1e-5)
    index.drop(1)
    stored[1] = ([1, 2], vectors[:2])  # what the database holds: a dropped namespace reloads from it
    deadline = time.monotonic() + 10  # a shared index fills it in the background: misses meanwhile
    while not (found := {i for i, _ in index.search(1, vectors[1], 5)}):
        assert time.monotonic() < deadline, "the namespace was never filled from the database"
        time.sleep(0.05)
    assert found == {1, 2}
    assert index.search(4, vectors[1], 5) == []  # never seen, nothing stored
    with pytest.raises(ValueError, match="384"):
        index.add(3, [1], np.zeros(10, dtype=np.float32))


def test_an_index_finds_near_duplicates_among_many(make_index) -> None:
    rng = np.random.default_rng(2)
    index, _ = make_index()
    vectors = _unit(rng, 1000)
    index.add(1, list(range(1000)), vectors)
    noisy = vectors[:100] + 0.02 * rng.standard_normal((100, 384)).astype(np.float32)
    found = sum(index.search(1, q / np.linalg.norm(q), 1)[0][0] == i for i, q in enumerate(noisy))
    assert found >= 98


def test_pgvector_refuses_a_url_that_is_not_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        index_class("pgvector")(lambda ns: ([], np.zeros((0, 384))), 384, url="sqlite:///x.db")


def test_kosmos_doctor_checks_the_shared_index_where_it_is_configured(
    pgvector_url: str, postgres_url: str, free_port, tmp_path
) -> None:
    from kosmos.platform.doctor import run_checks
    from kosmos.platform.settings import Settings

    def checked(index: str, url: str | None, database_url: str | None = postgres_url) -> list:
        cache = {"index": index, "index_url": url}
        settings = Settings(home=tmp_path, database={"url": database_url}, gateway={"cache": cache})
        return [c for c in run_checks(settings) if c.service == "semantic cache index (pgvector)"]

    assert checked("memory", None) == []  # the in-process index needs nothing
    [found] = checked("pgvector", pgvector_url)
    assert found.ok and found.detail.startswith("pgvector "), found
    [plain] = checked("pgvector", None)  # the metadata database: PostgreSQL without pgvector here
    assert not plain.ok and "no pgvector extension" in plain.detail, plain
    [gone] = checked("pgvector", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    assert not gone.ok and gone.detail.startswith("cannot connect"), gone
    [sqlite] = checked("pgvector", None, database_url=None)  # SQLite under the home
    assert not sqlite.ok and "gateway.cache.index_url" in sqlite.detail, sqlite


@pytest.fixture(scope="module")
def encode(tmp_path_factory):
    from kosmos.genai.embeddings import local_encoder

    return local_encoder(tmp_path_factory.mktemp("onnx"))


@pytest.fixture
def project(postgres_url: str, make_project):
    database = Database(postgres_url)
    yield database, make_project(database)
    database.dispose()


def _replicas(database: Database, encode, index: str, url: str | None) -> list[SemanticCache]:
    config = CacheSettings(index=index, index_url=url)
    return [SemanticCache(database, config, embed=encode) for _ in range(2)]


def test_an_entry_stored_by_one_replica_is_a_hit_on_another_and_a_flag_reaches_both(
    project, encode, pgvector_url
) -> None:
    database, project_id = project
    first, second = _replicas(database, encode, "pgvector", pgvector_url)
    partition = Partition(project_id, "chat", "1")
    ns_second = second.namespace(partition)
    assert not second.lookup(ns_second, QUESTION, second.embed(QUESTION)).hit  # seen empty first
    ns = first.namespace(partition)
    entry = first.store(ns, QUESTION, first.embed(QUESTION), ANSWER)
    stored = time.monotonic()
    paraphrase = "How can I reset my password?"
    found = second.lookup(ns_second, paraphrase, second.embed(paraphrase))
    assert found.entry_id == entry and time.monotonic() - stored < 1.0
    assert second.drop_entry(project_id, entry, "alice", "flagged", "wrong answer")
    assert not first.lookup(ns, QUESTION, first.embed(QUESTION)).hit
    first.store(ns, QUESTION, first.embed(QUESTION), ANSWER)
    assert first.invalidate(project_id, "alice", "new policy") == 1
    assert not second.lookup(ns_second, QUESTION, second.embed(QUESTION)).hit


def test_the_embedded_index_is_per_process(project, encode) -> None:
    """Why the shared backend exists: the in-process index of one replica never sees another's
    stores after it loaded the namespace."""
    database, project_id = project
    first, second = _replicas(database, encode, "memory", None)
    partition = Partition(project_id, "chat", "1")
    ns_second = second.namespace(partition)
    assert not second.lookup(ns_second, QUESTION, second.embed(QUESTION)).hit
    ns = first.namespace(partition)
    first.store(ns, QUESTION, first.embed(QUESTION), ANSWER)
    assert first.lookup(ns, QUESTION, first.embed(QUESTION)).hit
    assert not second.lookup(ns_second, QUESTION, second.embed(QUESTION)).hit


def test_the_shared_index_going_down_makes_misses_and_it_recovers(
    project, encode, pgvector_url, pgvector_server
) -> None:
    database, project_id = project
    cache, _ = _replicas(database, encode, "pgvector", pgvector_url)
    ns = cache.namespace(Partition(project_id, "chat", "1"))
    entry = cache.store(ns, QUESTION, cache.embed(QUESTION), ANSWER)
    vector = cache.embed(QUESTION)
    pgvector_server.stop()
    try:
        for _ in range(5):  # each call is refused quickly: the engine is not waited on per request
            started = time.monotonic()
            with pytest.raises(IndexUnavailable):
                cache.lookup(ns, QUESTION, vector)
            assert time.monotonic() - started < 2.5
        with pytest.raises(IndexUnavailable):
            cache.store(ns, "Another question?", cache.embed("Another question?"), ANSWER)
    finally:
        pgvector_server.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert cache.lookup(ns, QUESTION, vector).entry_id == entry
            break
        except IndexUnavailable:
            assert time.monotonic() < deadline, "the index did not recover after the server came back"
            time.sleep(0.2)
    assert cache.index.size(ns.id) == 1  # the failed store left nothing half-written
    assert [n["entries"] for n in cache.namespaces(project_id)] == [1]
