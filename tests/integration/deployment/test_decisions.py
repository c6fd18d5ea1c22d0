"""Decision records of real predictions on the data plane: explain, replay, skew (shared deploy_env)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
import pytest

from kosmos.deployment import sdk
from kosmos.features.repo import feature_repo
from kosmos.platform import KosmosClient
from kosmos.platform.errors import Forbidden, InvalidInput, NotFound

pytestmark = pytest.mark.timeout(600)


def _client(env: dict[str, Any], token: str | None = None) -> KosmosClient:
    return KosmosClient(url=env["url"], token=token or env["admin"])


def _rows(env: dict[str, Any], n: int, skip: int = 0) -> list[dict[str, Any]]:
    picked = env["rows"].iloc[skip : skip + n]
    return [
        {"user_id": int(r.user_id), "merchant_id": int(r.merchant_id), "amount": float(r.amount)}
        for r in picked.itertuples()
    ]


def _explained(c: KosmosClient, request_id: str) -> dict[str, Any]:
    """The record, once the data plane's recorder has written it (it batches once a second)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return sdk.explain("demo", request_id, client=c)
        except NotFound:
            assert time.monotonic() < deadline, f"no decision record for {request_id} after 15 s"
            time.sleep(0.3)


def test_a_prediction_is_recorded_explained_and_replayed_bit_for_bit(deploy_env) -> None:
    env = deploy_env
    with _client(env) as c:
        env["fraud_main"](c)
        stranger = f"stranger-{time.time_ns()}"  # a user of its own: other modules share this platform
        c.post("/users", {"name": stranger})
        outsider = c.post("/tokens", {"name": stranger, "user": stranger})["token"]
    rows = _rows(env, 2)
    with _client(env, env["viewer"]) as c:
        response = httpx.post(
            f"{c.dataplane_url}/demo/fraud-main/predict",
            json={"inputs": rows},
            headers={"Authorization": f"Bearer {env['viewer']}"},
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        request_id = response.headers["x-request-id"]
        assert answer["request_id"] == request_id  # the id the caller gets back is the record's key
        found = _explained(c, request_id)
    record = found["record"]
    assert record["kind"] == "model" and record["deployment"] == "fraud-main"
    assert record["model"] == "fraud" and record["model_version"] == answer["model_version"] == 1
    assert record["caller"] == "viewer" and record["traffic"]["arm"] == "stable"
    assert record["input"] == rows  # as received, before the join
    assert record["output"]["predictions"] == answer["predictions"]
    stored = record["features"]["merchant_fraud_rate_30d"]
    assert stored["view"] == "merchant_stats" and len(stored["values"]) == 2
    assert all(ts for ts in stored["event_timestamps"])  # when each served value was true
    assert "amount_vs_user_mean_7d" in record["features"]  # the on-demand view, from the request
    lineage = found["lineage"]
    assert lineage["model"]["version"] == 1 and lineage["run"]["run_id"]
    assert lineage["dataset"]["name"] == "deploy-set" and lineage["features"]["feature_service"]
    if env["settings"].mlflow_tracking_uri.startswith("http"):  # links into the MLflow UI, when it runs
        assert lineage["run"]["run_id"] in found["links"]["run"]
    else:
        assert found["links"] == {}

    with _client(env) as c:
        replayed = sdk.replay("demo", request_id, client=c)
        assert replayed["exact"] is True and replayed["replayed"] == answer["predictions"]
        assert replayed["against"]["version"] == 1 and replayed["against"]["decides_differently"] == []
        other = sdk.replay("demo", request_id, against="2", client=c)
        assert other["exact"] is True and other["against"]["version"] == 2
        assert other["against"]["predictions"] != answer["predictions"]  # v2 is another model
        with pytest.raises(InvalidInput, match="against"):  # a comparison that cannot be made is named
            sdk.replay("demo", request_id, against="no-such-alias", client=c)
        assert replayed["skew"]["checked"] is True
        assert "merchant_fraud_rate_30d" in replayed["skew"]["columns"]
        actions = [e["action"] for e in c.get("/audit", project="demo", object=request_id)]
        assert "decision.explain" in actions and "decision.replay" in actions
        with pytest.raises(NotFound):
            sdk.explain("demo", "no-such-request", client=c)
    with _client(env, outsider) as c, pytest.raises(NotFound):  # no role on demo: the same 404
        sdk.explain("demo", request_id, client=c)
    _the_cli_explains_it_as_docs_write_it(env, request_id, record)
    _the_web_page_shows_it(env, request_id)


def _the_cli_explains_it_as_docs_write_it(env: dict[str, Any], request_id: str, record: dict) -> None:
    """`kosmos explain ID -p demo` (options after the id, as README.md and docs/decisions.md write
    it): every row of the request, event times as UTC times, not epoch numbers."""
    from typer.testing import CliRunner

    from kosmos.platform.cli.main import app
    from kosmos.platform.settings import get_settings

    runner = CliRunner(env={"KOSMOS_CLIENT__URL": env["url"], "KOSMOS_CLIENT__TOKEN": env["viewer"]})
    get_settings.cache_clear()  # the settings are read again under the runner's environment
    try:
        _cli_checks(runner, app, request_id, record)
    finally:
        get_settings.cache_clear()


def _cli_checks(runner: Any, app: Any, request_id: str, record: dict) -> None:
    shown = runner.invoke(app, ["explain", request_id, "-p", "demo"])
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.output.splitlines()]
    fraud_rate = [line for line in lines if "merchant_fraud_rate_30d" in line]
    assert [line[0] for line in fraud_rate] == ["0", "1"], shown.output  # both rows of the request
    stamp = record["features"]["merchant_fraud_rate_30d"]["event_timestamps"][1]
    when = datetime.fromtimestamp(float(stamp), UTC).strftime("%Y-%m-%d %H:%M:%S")  # tables show UTC so
    assert when in shown.output and str(stamp) not in shown.output
    as_json = runner.invoke(app, ["replay", request_id, "-p", "demo", "-o", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["exact"] is True


def _the_web_page_shows_it(env: dict[str, Any], request_id: str) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(
        "from kosmos.ui.views import decisions\ndecisions.render()\n", default_timeout=120
    )
    for key, value in {"token": env["viewer"], "url": env["url"], "project": "demo"}.items():
        at.session_state[key] = value
    at.run()
    at.text_input[0].set_value(request_id).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    features = next(d.value for d in at.dataframe if "view" in d.value.columns)
    assert "merchant_stats" in features["view"].tolist()
    assert at.get("graphviz_chart") and "decision" in at.get("graphviz_chart")[0].proto.spec


def test_the_skew_detector_flags_an_online_value_the_offline_store_never_had(deploy_env) -> None:
    env = deploy_env
    row = _rows(env, 1, skip=10)
    store = feature_repo(env["settings"], "demo").store()
    entity = [{"merchant_id": row[0]["merchant_id"]}]
    refs = ["merchant_stats:merchant_txn_count_30d", "merchant_stats:merchant_fraud_rate_30d"]
    before = store.get_online_features(features=refs, entity_rows=entity).to_dict(
        include_event_timestamps=True
    )
    with _client(env) as c:
        env["fraud_main"](c)
        clean = sdk.predict("demo", "fraud-main", row, client=c)["request_id"]
        _explained(c, clean)
        assert (
            "merchant_fraud_rate_30d"
            not in sdk.replay("demo", clean, against=None, client=c)["skew"]["skewed"]
        )
        # a value written to the online store only (a buggy streaming job): training never saw it
        served = round(before["merchant_fraud_rate_30d"][0] + 0.5, 6)
        store.write_to_online_store(
            "merchant_stats",
            pd.DataFrame(
                {
                    "merchant_id": [row[0]["merchant_id"]],
                    "merchant_txn_count_30d": before["merchant_txn_count_30d"],
                    "merchant_fraud_rate_30d": [served],
                    "event_timestamp": [pd.Timestamp.now(tz="UTC")],
                    "created": [pd.Timestamp.now(tz="UTC")],
                }
            ),
        )
        try:
            skewed = sdk.predict("demo", "fraud-main", row, client=c)["request_id"]
            assert _explained(c, skewed)["record"]["features"]["merchant_fraud_rate_30d"]["values"] == [
                served
            ]
            skew = sdk.replay("demo", skewed, against=None, client=c)["skew"]
        finally:  # the shared deployment's store as it was
            store.write_to_online_store(
                "merchant_stats",
                pd.DataFrame(
                    {
                        "merchant_id": [row[0]["merchant_id"]],
                        "merchant_txn_count_30d": before["merchant_txn_count_30d"],
                        "merchant_fraud_rate_30d": before["merchant_fraud_rate_30d"],
                        "event_timestamp": [
                            pd.Timestamp(before["merchant_fraud_rate_30d__ts"][0], unit="s", tz="UTC")
                        ],
                        "created": [pd.Timestamp.now(tz="UTC")],
                    }
                ),
            )
    [flagged] = skew["skewed"]["merchant_fraud_rate_30d"]
    assert flagged["row"] == 0 and flagged["online"] == pytest.approx(served)
    assert flagged["offline"] == pytest.approx(before["merchant_fraud_rate_30d"][0])
    assert "merchant_txn_count_30d" not in skew["skewed"]  # written unchanged: no skew


def test_batch_replay_of_recorded_traffic_agrees_with_itself_and_measures_another_version(deploy_env) -> None:
    env = deploy_env
    with _client(env) as c:
        env["fraud_main"](c)
        sent = [sdk.predict("demo", "fraud-main", _rows(env, 2, skip=20 + 2 * i), client=c) for i in range(5)]
        _explained(c, sent[-1]["request_id"])  # the last one is written: the others were before it
        since = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=30)).isoformat()
        same = sdk.replay_window("demo", "fraud-main", 1, since=since, client=c)
        assert same["version"] == 1 and same["requests"] >= 5 and same["rows"] >= 10
        assert same["agreement"] == 1.0 and same["changed"] == 0 and same["mean_abs_diff"] == 0.0
        other = sdk.replay_window("demo", "fraud-main", "2", since=since, client=c)
        assert other["version"] == 2 and other["rows"] == same["rows"] and other["mean_abs_diff"] > 0
        assert other["by_recorded_version"]["1"]["rows"] == same["rows"]
        run = c.get(f"/projects/demo/runs/{other['mlflow_run_id']}")
        assert run["metrics"]["agreement"] == pytest.approx(other["agreement"])
        with pytest.raises(InvalidInput, match="since"):
            sdk.replay_window("demo", "fraud-main", 1, since="2020-01-01T00:00:00+00:00",
                              until="2020-01-02T00:00:00+00:00", client=c)  # fmt: skip
    with _client(env, env["viewer"]) as c, pytest.raises(Forbidden):
        sdk.replay_window("demo", "fraud-main", 1, client=c)  # it runs models: developers and up


def test_a_record_whose_model_version_is_gone_still_explains_what_it_can(deploy_env) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from kosmos.deployment.models import DecisionRow
    from kosmos.platform.db.models import Project

    env, now = deploy_env, datetime.now(UTC)
    row = _rows(env, 1, skip=40)
    record = {
        "project": "demo", "deployment": "fraud-main", "kind": "model", "request_id": "ghost-1",
        "at": now.isoformat(), "caller": "admin", "model": "fraud", "model_version": 99,
        "input": row, "features": {}, "output": {"predictions": [[0.5, 0.5]], "classes": ["0", "1"]},
        "status": "ok",
    }  # fmt: skip
    with env["database"].transaction() as session:
        project_id = session.scalar(select(Project.id).where(Project.name == "demo"))
        session.add(
            DecisionRow(
                project_id=project_id,
                request_id="ghost-1",
                part=0,
                deployment="fraud-main",
                kind="model",
                at=now,
                model_version=99,
                status="ok",
                expires_at=now + timedelta(days=1),
                record=record,
            )
        )
    with _client(env) as c:
        found = sdk.explain("demo", "ghost-1", client=c)
        assert found["record"]["input"] == row and found["lineage"] is None
        assert "version 99 is no longer registered" in found["missing"]
        replayed = sdk.replay("demo", "ghost-1", client=c)
    assert replayed["exact"] is False and replayed["replayed"] is None and replayed["error"]
    assert replayed["against"]["version"] == 1 and len(replayed["against"]["predictions"]) == 1
    assert replayed["skew"]["checked"] is False  # no features were joined
