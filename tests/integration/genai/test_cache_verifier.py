"""The cache verifier, trained through Kosmos itself (a versioned dataset, a tracked run, a registered
model under an alias), loaded by the cache from the registry, and what happens when it is missing."""

from __future__ import annotations

import pytest

from kosmos.genai.gateway import Gateway
from kosmos.genai.semantic_cache import Partition, SemanticCache
from kosmos.genai.verifier import Verifier
from kosmos.genai.verifier.features import feature_frame
from kosmos.genai.verifier.train import train_verifier
from kosmos.platform import KosmosClient
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import CacheSettings
from kosmos.training import sdk as training

pytestmark = pytest.mark.timeout(600)
ANSWER = {"text": "Use the transfer page.", "finish_reason": "stop", "usage": {"completion_tokens": 5}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, free_port, live_platform, platform_home):
    """A platform of its own. A training run points this process's MLflow client at that
    platform's MLflow: put it back afterwards, or the next module's in-process gateway traces go
    to an MLflow that is gone ("No Experiment with id=2 exists")."""
    import mlflow

    before = mlflow.get_tracking_uri()
    home = tmp_path_factory.mktemp("verifier-home")
    settings = platform_home(home)
    database = Database(settings.database_url)
    admin = bootstrap(settings, database).token
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)  # run() sets it for this platform
        with live_platform(settings, database, free_port()) as url:
            settings = settings.model_copy(update={"client": settings.client.model_copy(update={"url": url})})
            with KosmosClient(url=url, token=admin) as client:
                result = train_verifier("demo", settings, client)
                yield {"settings": settings, "database": database, "client": client, "result": result}
        mlflow.set_tracking_uri(before)
    database.dispose()


def test_the_verifier_is_trained_versioned_and_registered_through_kosmos(trained) -> None:
    result, client = trained["result"], trained["client"]
    assert result["reference"] == "demo/cache-verifier@champion" and result["version"] == 1
    model = training.show_model("demo", "cache-verifier", client=client)
    assert model["aliases"] == {"champion": 1}
    lineage = training.lineage("demo", "cache-verifier", "champion", client=client)
    assert (
        lineage["dataset"]["name"] == "cache-verifier-pairs" and lineage["run"]["run_id"] == result["run_id"]
    )
    # each perturbation family held out in turn: the run records how much of it is still refused
    assert {k for k in result["metrics"] if k.startswith("heldout_family_refused_")} >= {
        "heldout_family_refused_number", "heldout_family_refused_negation", "heldout_family_refused_entity",
    }  # fmt: skip
    assert result["metrics"]["heldout_family_refused_number"] > 0.9


def test_the_cache_asks_the_registered_verifier(trained, postgres_url, make_project) -> None:
    settings = trained["settings"]
    verifier = Verifier.load(settings.mlflow_tracking_uri, "demo/cache-verifier", 0.5)
    assert verifier.source == "demo/cache-verifier@champion (version 1)"
    database = Database(postgres_url)
    project_id = make_project(database)
    cache = SemanticCache(database, CacheSettings(threshold=0.5))
    ns = cache.namespace(Partition(project_id, "chat", "1"))
    stored = "How do I move money from my savings to my checking account?"
    entry = cache.store(ns, stored, cache.embed(stored), ANSWER)
    paraphrase = "How can I move money from my savings to my checking account?"
    other = "Can the landlord charge the tenant for repairs?"
    p_paraphrase = verifier.probability(stored, paraphrase, cache.embed(stored), cache.embed(paraphrase))
    p_swapped = verifier.probability(
        stored, swapped := "How do I move money from my checking to my savings account?",
        cache.embed(stored), cache.embed(swapped),
    )  # fmt: skip
    assert p_paraphrase > p_swapped  # the reordered roles cost probability
    # the fast path (plain arrays) gives what scikit-learn's predict_proba gives
    frame = feature_frame([stored], [paraphrase], cache.embed(stored), cache.embed(paraphrase))
    assert p_paraphrase == pytest.approx(verifier.model.predict_proba(frame)[0, 1], abs=1e-9)
    assert verifier.probability(stored, other, cache.embed(stored), cache.embed(other)) < 0.5
    # the cache serves exactly what the verifier accepts: a bar between the two probabilities
    cache.verifier = Verifier(verifier.model, (p_paraphrase + p_swapped) / 2, verifier.source)
    refused = cache.lookup(ns, swapped, cache.embed(swapped))
    assert not refused.hit and refused.rejected == [f"the verifier gave {p_swapped:.2f}"], refused
    assert cache.lookup(ns, paraphrase, cache.embed(paraphrase)).entry_id == entry
    cache.verifier_error = "the registry is down"  # a verifier that cannot answer: misses, never hits
    assert cache.lookup(ns, paraphrase, cache.embed(paraphrase)).rejected == [
        "the cache verifier is unavailable"
    ]
    database.dispose()


def test_a_missing_verifier_is_a_miss_embedded_and_stops_a_production_start(trained) -> None:
    from kosmos.genai._plugin import plugin
    from kosmos.platform.plugins import StartupRefused

    settings, database = trained["settings"], trained["database"]
    cache = settings.gateway.cache.model_copy(update={"verifier": "demo/no-such-verifier@champion"})
    embedded = settings.model_copy(update={"gateway": settings.gateway.model_copy(update={"cache": cache})})
    gateway = Gateway(embedded, database)
    assert gateway.cache.verifier is None and "no-such-verifier" in (gateway.cache.verifier_error or "")
    production = embedded.model_copy(update={"profile": "production"})
    with pytest.raises(StartupRefused, match="no-such-verifier"):  # `kosmos up` stops on it
        plugin.bootstrap(production)
    # a gateway that finds it gone while running answers misses, never errors
    assert Gateway(production, database).cache.verifier_error
