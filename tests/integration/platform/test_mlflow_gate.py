"""The MLflow server behind Kosmos's identity (`mlflow server --app-name kosmos`), for real.

A real MLflow server runs the gate over the platform's PostgreSQL metadata; users train through
`kosmos.training.run` and call MLflow with its own client, each with their Kosmos token.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from kosmos.platform.client import KosmosClient

HERE = Path(__file__).parent


def as_user(token: str, monkeypatch: pytest.MonkeyPatch, url: str) -> MlflowClient:
    """An MLflow client that sends ``token`` (the client reads the variable at each request)."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    return MlflowClient(url, registry_uri=url)


def _status(call) -> int:
    try:
        call()
    except RestException as exc:
        return exc.get_http_status_code()
    return 200


def test_a_user_trains_through_kosmos_and_other_projects_see_nothing(gate, monkeypatch) -> None:
    import mlflow

    from kosmos.training.tracking import run

    url, tokens = gate["url"], gate["tokens"]
    # alice trains as a notebook would: her Kosmos token is what MLflow sees
    with (
        KosmosClient(url=gate["api"], token=tokens["alice"]) as alice_kosmos,
        run("demo", "gate", settings=gate["settings"], client=alice_kosmos, code_path=HERE) as r,
    ):
        r.log_params({"lr": 0.1})
        r.log_metrics({"loss": 0.5}, step=1)
        mlflow.log_text("hello", "notes/hello.txt", run_id=r.run_id)
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == tokens["alice"]

    alice = as_user(tokens["alice"], monkeypatch, url)
    stored = alice.get_run(r.run_id)
    assert stored.data.params == {"lr": "0.1"} and stored.data.tags["kosmos.project"] == "demo"
    assert stored.info.user_id == "alice"
    assert alice.download_artifacts(r.run_id, "notes/hello.txt")

    carol = as_user(tokens["carol"], monkeypatch, url)
    carol.create_experiment("other/own")
    assert [e.name for e in carol.search_experiments()] == ["other/own"]
    experiment = stored.info.experiment_id
    assert _status(lambda: carol.get_run(r.run_id)) == 404
    assert _status(lambda: carol.get_experiment(experiment)) == 404
    assert _status(lambda: carol.get_metric_history(r.run_id, "loss")) == 404
    assert _status(lambda: carol.list_artifacts(r.run_id)) == 404
    assert _status(lambda: carol.create_run(experiment)) == 404
    assert _status(lambda: carol.create_experiment("demo/intruder")) == 404
    assert _status(lambda: carol.search_runs([experiment])) == 404
    artifact = f"{url}/api/2.0/mlflow-artifacts/artifacts/{experiment}/{r.run_id}/artifacts/notes/hello.txt"
    assert httpx.get(artifact, headers={"Authorization": f"Bearer {tokens['carol']}"}).status_code == 404
    assert httpx.get(artifact, headers={"Authorization": f"Bearer {tokens['alice']}"}).text == "hello"

    # nobody anonymous; a browser gets a basic-auth prompt and signs in with the token as password
    anonymous = httpx.post(f"{url}/api/2.0/mlflow/experiments/search", json={})
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["www-authenticate"]
    ui = httpx.post(
        f"{url}/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10}, auth=("c", tokens["carol"])
    )
    assert [e["name"] for e in ui.json().get("experiments", [])] == ["other/own"], ui.text


def test_roles_tags_and_the_registry_follow_kosmos_rules(gate, monkeypatch) -> None:
    url, tokens = gate["url"], gate["tokens"]
    alice = as_user(tokens["alice"], monkeypatch, url)
    experiment = alice.create_experiment("demo/roles")
    created = alice.create_run(experiment, tags={"mlflow.user": "mallory", "kosmos.project": "other"})
    assert created.info.user_id == "alice"
    assert created.data.tags["mlflow.user"] == "alice" and created.data.tags["kosmos.project"] == "demo"
    with pytest.raises(MlflowException, match="say whose"):
        alice.set_tag(created.info.run_id, "kosmos.project", "other")
    with pytest.raises(MlflowException, match="keeps its project"):
        alice.rename_experiment(experiment, "other/moved")
    with pytest.raises(MlflowException, match="registry writes go through Kosmos"):
        alice.create_registered_model("demo.direct")

    bob = as_user(tokens["bob"], monkeypatch, url)  # a viewer reads, never writes
    assert bob.get_run(created.info.run_id).info.run_id == created.info.run_id
    with pytest.raises(MlflowException, match="role developer or higher"):
        bob.log_metric(created.info.run_id, "loss", 1.0)
    events = gate["kosmos"].get("/audit", actor="bob")
    assert any(e["outcome"] == "denied" and e["project"] == "demo" for e in events)

    service = as_user(gate["service_token"], monkeypatch, url)  # Kosmos itself registers, for both projects
    service.create_registered_model("demo.scorer")
    service.create_registered_model("other.scorer")
    carol = as_user(tokens["carol"], monkeypatch, url)
    assert [m.name for m in carol.search_registered_models()] == ["other.scorer"]
    assert _status(lambda: carol.get_registered_model("demo.scorer")) == 404
    assert _status(lambda: carol.get_registered_model("other.scorer")) == 200
    # what the table does not list (GraphQL here) is for administrators only
    graphql = {"query": "{ test }"}
    assert httpx.post(f"{url}/graphql", json=graphql, auth=("c", tokens["carol"])).status_code == 403
    assert httpx.post(f"{url}/graphql", json=graphql, auth=("a", tokens["admin"])).status_code != 403

    # a revoked token is refused at once (the cache is off in this test)
    gate["kosmos"].delete("/tokens/carol-t", user="carol")
    assert _status(lambda: carol.search_registered_models()) == 401


def test_a_developer_saves_a_model_under_their_own_name_after_kosmos_login(gate, monkeypatch) -> None:
    """The README's road with a developer token: ``kosmos.login`` once, then ``run`` and
    ``log_model`` (MLflow 3 sends ``mlflow.user`` again when it logs a model)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import kosmos
    from kosmos.training.tracking import run

    url, tokens = gate["url"], gate["tokens"]
    kosmos.login(url=gate["api"], token=tokens["alice"])  # no client=, no KOSMOS_CLIENT__TOKEN
    frame = pd.DataFrame({"amount": [1.0, 5.0, 2.0, 9.0], "count": [1, 3, 1, 4]})
    model = LogisticRegression().fit(frame, [0, 1, 0, 1])
    with run("demo", "models", settings=gate["settings"], code_path=HERE) as r:
        uri = r.log_model(model, input_example=frame.head(2))
    alice = as_user(tokens["alice"], monkeypatch, url)
    stored = alice.get_run(r.run_id)
    assert stored.info.user_id == "alice" and stored.data.tags["mlflow.user"] == "alice"
    assert stored.data.tags["kosmos.user"] == "alice"
    logged = alice.search_logged_models([stored.info.experiment_id])
    assert [m.source_run_id for m in logged] == [r.run_id] and uri
    # the same tag naming someone else, or taken away, is still refused
    with pytest.raises(MlflowException, match="say whose"):
        alice.set_tag(r.run_id, "mlflow.user", "mallory")
    with pytest.raises(MlflowException, match="say whose"):
        alice.delete_tag(r.run_id, "kosmos.user")
    alice.set_tag(r.run_id, "mlflow.user", "alice")  # what Kosmos set, sent again: no change
    assert alice.get_run(r.run_id).data.tags["mlflow.user"] == "alice"
    for name in dir(kosmos):  # every name the package lists resolves
        assert getattr(kosmos, name) is not None, name
