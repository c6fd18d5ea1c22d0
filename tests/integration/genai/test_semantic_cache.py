"""The semantic cache on the real metadata databases (SQLite and PostgreSQL), with the real
embedding model: partitions, version moves, TTL, eviction, corruption, durability, feedback;
and the gateway's rate limits on memory and on the real Redis."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select, update

from kosmos.genai.embeddings import local_encoder
from kosmos.genai.limits import ProjectLimits, limiter
from kosmos.genai.models_db import CacheEntry, CacheEvent
from kosmos.genai.semantic_cache import Partition, SemanticCache
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import CacheSettings, Settings

QUESTION = "How do I reset my password?"
ANSWER = {
    "text": "Use the reset link.",
    "finish_reason": "stop",
    "usage": {"prompt_tokens": 9, "completion_tokens": 5},
}


@pytest.fixture(scope="module")
def encode(tmp_path_factory):
    return local_encoder(tmp_path_factory.mktemp("onnx"))


@pytest.fixture
def env(database_url: str, encode, make_project):
    database = Database(database_url)
    ids = [make_project(database), make_project(database)]
    cache = SemanticCache(database, CacheSettings(), embed=encode)
    yield cache, database, ids
    cache.flush_hits()
    database.dispose()


def _stored(cache: SemanticCache, partition: Partition, question: str = QUESTION, **kwargs):
    ns = cache.namespace(partition)
    entry = cache.store(ns, question, cache.embed(question), ANSWER, **kwargs)
    return ns, entry


def test_a_paraphrase_hits_and_a_near_miss_does_not(env) -> None:
    cache, _, (a, _) = env
    ns, entry = _stored(cache, Partition(a, "chat", "1"), "Why was my card declined?")
    paraphrase = "What could cause my card to be declined?"
    hit = cache.lookup(ns, paraphrase, cache.embed(paraphrase))
    assert hit.hit and hit.entry_id == entry and hit.answer == ANSWER and hit.similarity >= 0.7
    near = "Why was my card not declined?"
    miss = cache.lookup(ns, near, cache.embed(near))
    assert not miss.hit and miss.rejected == ["negation differs"]  # above the threshold, refused
    assert cache.lookup(ns, near, cache.embed(near), guard=False).hit  # a plain cosine cache serves it


def test_project_b_never_gets_project_a_s_answer(env) -> None:
    cache, _, (a, b) = env
    _stored(cache, Partition(a, "chat", "1"))
    for partition in (
        Partition(b, "chat", "1"),  # another project, same model, same question
        Partition(a, "other-model", "1"),
        Partition(a, "chat", "1", system="You are a pirate."),
        Partition(a, "chat", "1", prompt="support@production", prompt_version=2),
    ):
        ns = cache.namespace(partition)
        assert not cache.lookup(ns, QUESTION, cache.embed(QUESTION)).hit, partition
    assert len(cache.namespaces(b)) == 1 and cache.namespaces(b)[0]["entries"] == 0


def test_a_version_move_drops_the_old_answers(env) -> None:
    cache, database, (a, _) = env
    ns1, _ = _stored(cache, Partition(a, "chat", "1", prompt="support@production", prompt_version=1))
    moved = cache.namespace(Partition(a, "chat", "1", prompt="support@production", prompt_version=2))
    assert moved.id != ns1.id and moved.invalidated == 1
    assert not cache.lookup(moved, QUESTION, cache.embed(QUESTION)).hit
    model_moved = cache.namespace(Partition(a, "chat", "2", prompt="support@production", prompt_version=2))
    assert model_moved.id != moved.id
    with database.transaction() as session:
        assert session.scalar(select(CacheEntry).where(CacheEntry.namespace_id == ns1.id)) is None
        reasons = session.scalars(select(CacheEvent.reason).where(CacheEvent.project_id == a)).all()
    assert any("from version 1 to 2" in r for r in reasons)


def test_expired_corrupted_and_evicted_entries_are_never_served(env) -> None:
    cache, database, (a, _) = env
    ns, entry = _stored(cache, Partition(a, "chat", "1"), ttl_seconds=1)
    time.sleep(1.2)
    assert not cache.lookup(ns, QUESTION, cache.embed(QUESTION)).hit
    ns, entry = _stored(cache, Partition(a, "chat", "2"))
    with database.transaction() as session:  # someone edits the answer behind the cache's back
        session.execute(
            update(CacheEntry).where(CacheEntry.id == entry).values(answer={"text": "Wire me $500."})
        )
    assert not cache.lookup(ns, QUESTION, cache.embed(QUESTION)).hit
    with database.transaction() as session:
        assert session.get(CacheEntry, entry) is None  # dropped, not kept around
    ns = cache.namespace(Partition(a, "chat", "3"))
    questions = ["How do I close my account?", "What is a chargeback?", "How do I order a new card?"]
    for q in questions:
        cache.store(ns, q, cache.embed(q), ANSWER, max_entries=2)
    assert cache.index.size(ns.id) == 2
    assert not cache.lookup(ns, questions[0], cache.embed(questions[0])).hit  # the oldest went
    assert cache.lookup(ns, questions[2], cache.embed(questions[2])).hit
    assert cache.events(a, since=_epoch())["evicted"] == 1


def test_entries_survive_a_restart_and_flags_drop_them(env, encode) -> None:
    cache, database, (a, _) = env
    ns, entry = _stored(cache, Partition(a, "chat", "1"))
    restarted = SemanticCache(database, CacheSettings(), embed=encode)  # a new process: empty index
    ns_again = restarted.namespace(Partition(a, "chat", "1"))
    assert ns_again.id == ns.id
    assert restarted.lookup(ns_again, QUESTION, restarted.embed(QUESTION)).entry_id == entry
    assert restarted.drop_entry(a, entry, "alice", "flagged", "wrong answer")
    assert not restarted.lookup(ns_again, QUESTION, restarted.embed(QUESTION)).hit
    assert restarted.events(a, since=_epoch())["flagged"] == 1
    assert not restarted.drop_entry(a + 1000, entry, "alice", "flagged", "x")  # not another project's


def test_hits_are_counted_in_the_database(env) -> None:
    cache, database, (a, _) = env
    ns, entry = _stored(cache, Partition(a, "chat", "1"))
    for _ in range(3):
        assert cache.lookup(ns, QUESTION, cache.embed(QUESTION)).hit
    cache.flush_hits()
    with database.transaction() as session:
        assert session.get(CacheEntry, entry).hits == 3


def _epoch():
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis"])
def limits(request, redis_url: str):
    prefix = f"kosmos-test-{uuid.uuid4().hex[:8]}:"
    settings = Settings(gateway={"limiter": request.param}, redis={"url": redis_url, "prefix": prefix})
    yield ProjectLimits(limiter(settings))
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_rate_limits_and_token_quotas(limits) -> None:
    assert limits.admit(1, requests_per_minute=2, tokens_per_day=100) is None
    assert limits.admit(1, requests_per_minute=2, tokens_per_day=100) is None
    refused = limits.admit(1, requests_per_minute=2, tokens_per_day=100)
    assert refused and "2 requests per minute" in refused.message and 1 <= refused.retry_after <= 60
    assert limits.admit(2, requests_per_minute=2, tokens_per_day=100) is None  # per project
    limits.spend(2, 100)
    spent = limits.admit(2, requests_per_minute=100, tokens_per_day=100)
    assert spent and "token quota" in spent.message and spent.retry_after <= 86400


def test_an_unknown_limiter_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid: memory, redis"):
        limiter(Settings(gateway={"limiter": "etcd"}))


def test_audits_compare_answers_and_are_counted_per_namespace(env) -> None:
    cache, _, (a, _) = env
    assert cache.agrees("Use the reset link.", "use the  reset link.")
    assert cache.agrees(
        "You can reset your password with the link on the sign-in page.",
        "Reset your password using the link on the sign-in page.",
    )
    assert not cache.agrees("The transfer fee is 5 EUR.", "The transfer fee is 50 EUR.")
    assert not cache.agrees("Use the reset link.", "Our branches open at nine in the morning.")
    ns, entry = _stored(cache, Partition(a, "chat", "1"))
    other, _ = _stored(cache, Partition(a, "summary", "1"), "Where is my nearest branch?")
    paraphrase = "How can I reset my password?"
    found = cache.lookup(ns, paraphrase, cache.embed(paraphrase))
    assert found.entry_id == entry
    cache.record_audit(a, ns.id, entry, "chat", True, found.similarity)
    assert cache.lookup(ns, paraphrase, cache.embed(paraphrase)).hit  # an agreeing audit changes nothing
    cache.record_audit(a, ns.id, entry, "chat", False, found.similarity)
    refused = cache.lookup(ns, paraphrase, cache.embed(paraphrase))
    assert not refused.hit and "after a disagreeing audit" in refused.rejected[0]
    assert cache.lookup(ns, QUESTION, cache.embed(QUESTION)).entry_id == entry  # closer ones still hit
    assert cache.drop_entry(a, entry, "alice", "flagged", "wrong")
    assert cache.events_by_namespace(a, _epoch()) == {
        ns.id: {"audit_agreed": 1, "audit_disagreed": 1, "flagged": 1}
    }
    totals = cache.events(a, _epoch())
    assert (totals["audit_agreed"], totals["audit_disagreed"], totals["flagged"]) == (1, 1, 1)
    assert other.id not in cache.events_by_namespace(a, _epoch())


def test_a_namespace_whose_audits_exceed_the_bound_gets_a_higher_threshold(env) -> None:
    cache, _, (a, _) = env
    ns, entry = _stored(cache, Partition(a, "chat", "1"))
    threshold = cache.namespaces(a)[0]["threshold"]

    def audit(agreed: bool) -> float:
        cache.record_audit(a, ns.id, entry, "chat", agreed, 0.9, bound=0.01)
        return next(s["threshold"] for s in cache.namespaces(a) if s["id"] == ns.id)

    assert [audit(True) for _ in range(20)] == [threshold] * 20  # agreeing audits change nothing
    # 1 of 21: Wilson's interval 0.8%-22.7% still holds the 1% bound: unknown, nothing changes
    assert audit(False) == threshold
    assert audit(False) == pytest.approx(threshold + 0.05)  # 2 of 22: 2.5%-27.8%, all above 1%
    totals = cache.events(a, _epoch())
    assert totals["threshold_raised"] == 1
    # the evidence starts again at the new threshold: 9 disagreements are fewer than MIN_AUDITS
    assert [audit(False) for _ in range(9)] == [pytest.approx(threshold + 0.05)] * 9
    assert audit(False) == pytest.approx(threshold + 0.10)  # the 10th: all 10 disagreed
    # without a bound (the caller passes none) audits never move the threshold
    for _ in range(10):
        cache.record_audit(a, ns.id, entry, "chat", False, 0.9)
    now = next(s["threshold"] for s in cache.namespaces(a) if s["id"] == ns.id)
    assert now == pytest.approx(threshold + 0.10)
