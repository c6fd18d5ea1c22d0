"""Deployments on a real local Ray cluster: deploy, predict with features, rollouts, faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from kosmos.deployment import sdk
from kosmos.deployment.optimize import call_cost
from kosmos.platform import KosmosClient
from kosmos.platform.errors import Conflict, InvalidInput, NotFound, UnknownEntity

SERVICE = "fraud_detection_v1"
pytestmark = pytest.mark.timeout(600)  # Serve replicas start in seconds to tens of seconds on 2 cores


def _client(env: dict[str, Any], token: str | None = None) -> KosmosClient:
    return KosmosClient(url=env["url"], token=token or env["admin"])


def _rows(env: dict[str, Any], n: int = 3) -> list[dict[str, Any]]:
    picked = env["rows"].head(n)
    return [
        {"user_id": int(r.user_id), "merchant_id": int(r.merchant_id), "amount": float(r.amount)}
        for r in picked.itertuples()
    ]


def _wait(c: KosmosClient, name: str, until: Callable[[dict], bool], timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        d = sdk.status("demo", name, client=c)
        if until(d):
            return d
        if d["status"] == "failed" or time.monotonic() > deadline:
            raise AssertionError(f"timed out; last state: {d}")
        time.sleep(0.5)


def _router_applies(c: KosmosClient, name: str, until: Callable[[dict], bool]) -> None:
    """Wait until the running router reports the policy (it is reconfigured moments after the record)."""
    deadline = time.monotonic() + 60
    while not until(policy := sdk.stats("demo", name, client=c)["policy"]):
        assert time.monotonic() < deadline, policy
        time.sleep(0.2)


def _healthy(d: dict) -> bool:
    return d["status"] == "healthy"


def _create(env: dict[str, Any], name: str, **spec: Any) -> dict:
    with _client(env) as c:
        if name == "fraud-main":  # shared with the data plane tests, which may have created it
            return env["fraud_main"](c)
        spec.setdefault("num_cpus", 0.25)  # the shared test cluster has 4 logical CPUs
        sdk.create("demo", name, "fraud", feature_service=SERVICE, log_sample_rate=1.0, client=c, **spec)
        return _wait(c, name, _healthy)


def _drive(env: dict[str, Any], name: str, until: Callable[[dict], bool], timeout_s: float = 240) -> tuple:
    """Send traffic until ``until(status)``; returns (state, answers by version, failure messages)."""
    versions: dict[int, int] = {}
    failures: list[str] = []
    deadline = time.monotonic() + timeout_s
    with _client(env) as c:
        while True:
            for _ in range(10):
                try:
                    answer = sdk.predict("demo", name, _rows(env, 1), client=c)
                    versions[answer["model_version"]] = versions.get(answer["model_version"], 0) + 1
                except Exception as exc:
                    failures.append(str(exc))
                    print(f"request failed: {exc}")
            state = sdk.status("demo", name, client=c)
            if until(state):
                return state, versions, failures
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; last state: {state}")


def test_deploy_and_predict_with_online_features(deploy_env) -> None:
    state = _create(deploy_env, "fraud-main")
    assert state["stable_version"] == 1 and state["traffic"] == {"1": 100}
    with _client(deploy_env, deploy_env["viewer"]) as c:
        answer = sdk.predict("demo", "fraud-main", _rows(deploy_env, 3), client=c)
        assert answer["model_version"] == 1 and answer["request_id"]
        assert len(answer["predictions"]) == 3
        scores = [p[1] if isinstance(p, list) else p for p in answer["predictions"]]
        assert all(0.0 <= s <= 1.0 for s in scores)
        batch = sdk.predict_batch("demo", "fraud-main", _rows(deploy_env, 1) * 1200, client=c)
        assert batch["rows"] == 1200 and batch["model_versions"] == [1]
        assert batch["predictions"][0] == batch["predictions"][-1]  # same row, same features, same score
        # a typo in an id gets no plausible score made of imputed values: 404 naming key and value
        typo = {**_rows(deploy_env, 1)[0], "merchant_id": 999999}
        with pytest.raises(UnknownEntity) as unknown:
            sdk.predict("demo", "fraud-main", [*_rows(deploy_env, 1), typo], client=c)
        assert unknown.value.status_code == 404 and "unknown merchant_id 999999" in str(unknown.value)
        assert [(d["field"], d["value"]) for d in unknown.value.details] == [
            ("inputs[1].merchant_id", 999999)
        ]
        with pytest.raises(UnknownEntity, match=r"inputs\[1000\]\.merchant_id"):  # named in the whole batch
            sdk.predict_batch("demo", "fraud-main", _rows(deploy_env, 1) * 1000 + [typo], client=c)
        # a DataFrame in, a DataFrame out: one row per input on its index, a column per class label
        scored = sdk.predict(
            "demo", "fraud-main", pd.DataFrame(_rows(deploy_env, 3), index=[7, 8, 9]), client=c
        )
        assert list(scored.columns) == ["0", "1"] and list(scored.index) == [7, 8, 9]
        assert scored["1"].tolist() == pytest.approx(scores) and scored.attrs["model_version"] == 1
        many = pd.DataFrame(_rows(deploy_env, 1) * 2500)
        big = sdk.predict_batch("demo", "fraud-main", many, chunk_rows=1000, progress=False, client=c)
        assert len(big) == 2500 and big.attrs["model_versions"] == [1] and big["1"].nunique() == 1
        deadline = time.monotonic() + 10  # the data plane writes its records once a second
        # this request's own line: other tests of the package leave records of fraud-main too
        while not (
            ours := [
                x
                for x in sdk.logs("demo", "fraud-main", limit=200, client=c)
                if x["request_id"] == answer["request_id"]
            ]
        ):
            assert time.monotonic() < deadline, "no inference log line was written"
            time.sleep(0.3)
    assert ours[0]["model_version"] == 1
    assert "merchant_fraud_rate_30d" in ours[0]["features_used"]
    assert "amount_vs_user_mean_7d" in ours[0]["features_used"]  # on-demand view from the request amount


def test_bad_payloads_get_4xx_naming_each_field(deploy_env) -> None:
    with _client(deploy_env) as c:
        _wait(c, "fraud-main", _healthy)
        bad = [{"user_id": 1, "merchant_id": 1, "amount": "lots", "colour": "red"}]
        with pytest.raises(InvalidInput) as err:
            sdk.predict("demo", "fraud-main", bad, client=c)
        fields = {d["field"] for d in err.value.details}
        assert {"inputs[0].amount", "inputs[0].colour"} <= fields, err.value.details
        with pytest.raises(InvalidInput, match="user_id"):
            sdk.predict("demo", "fraud-main", [{"merchant_id": 1, "amount": 3.0}], client=c)
        with pytest.raises(InvalidInput, match="at most 1000 rows"):
            sdk.predict("demo", "fraud-main", _rows(deploy_env, 1) * 1001, client=c)
        with pytest.raises(InvalidInput, match="non-empty list"):
            sdk.predict("demo", "fraud-main", [], client=c)
        with pytest.raises(NotFound):
            sdk.predict("demo", "no-such-deployment", _rows(deploy_env, 1), client=c)
    response = httpx.post(
        f"{deploy_env['url']}/api/v1/projects/demo/deployments/fraud-main/predict",
        json={"inputs": _rows(deploy_env, 1)},
    )
    assert response.status_code == 401  # every route needs a token, predictions too


def test_a_missing_version_is_refused_and_the_old_one_keeps_serving(deploy_env) -> None:
    with _client(deploy_env) as c:
        with pytest.raises(NotFound, match="no version or alias '99'"):
            sdk.rollout("demo", "fraud-main", 99, client=c)
        with pytest.raises(NotFound):
            sdk.create("demo", "fraud-ghost", "fraud", version="41", client=c)
        state = sdk.status("demo", "fraud-main", client=c)
        assert state["stable_version"] == 1 and state["candidate_version"] is None
        assert sdk.predict("demo", "fraud-main", _rows(deploy_env, 1), client=c)["model_version"] == 1
        with pytest.raises(InvalidInput):
            sdk.create("demo", "fraud-bad", "fraud", rollout={"steps": [10, 50]}, client=c)


def test_canary_with_an_injected_fault_rolls_back_automatically(deploy_env) -> None:
    rollout = {"steps": [50, 100], "step_seconds": 2, "slo": {"min_requests": 5, "max_error_rate": 0.05}}
    _create(deploy_env, "fraud-canary", rollout=rollout)
    # as an MLOps engineer runs it: `--wait` exits with the rollout's outcome (8: rolled back), not
    # with the status read after it (the stable version is healthy again seconds later)
    kosmos = str(Path(sys.executable).parent / "kosmos")
    env = {**os.environ, "KOSMOS_CLIENT__URL": deploy_env["url"], "KOSMOS_CLIENT__TOKEN": deploy_env["admin"]}
    waiting = subprocess.Popen(
        [kosmos, "deploy", "rollout", "fraud-canary", "-v", "3", "-p", "demo", "--wait", "--timeout", "300"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    with _client(deploy_env) as c:
        _wait(
            c, "fraud-canary", lambda d: d["candidate_version"] == 3, timeout_s=60
        )  # v3 fails every request
        with pytest.raises(Conflict, match="already rolling out"):
            sdk.rollout("demo", "fraud-canary", 2, client=c)
    state, _versions, failures = _drive(
        deploy_env, "fraud-canary", lambda d: (d["details"].get("last_rollback") or {}).get("version") == 3
    )
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 8, out
    assert "v3 was rolled back" in out
    assert state["candidate_version"] is None and state["traffic"] == {"1": 100}
    assert "breached its SLO" in state["details"]["last_rollback"]["reason"]
    # it fails every request: its SLO (5% of at least 5 requests) is lost at the first failure, and
    # the router sends it nothing more while the reconciler rolls it back (docs/deployment.md)
    assert 1 <= len(failures) <= 3, failures
    cause = "RuntimeError: drill: this model version fails every request"  # what failed, no traceback
    assert any(f"model version 3 failed: {cause}" in f for f in failures), failures[:3]
    assert not any("Traceback" in f for f in failures)
    with _client(deploy_env) as c:
        # every data-plane replica re-reads the records within dataplane.routing_refresh_seconds (1 s)
        time.sleep(2 * deploy_env["settings"].dataplane.routing_refresh_seconds + 1)
        for _ in range(40):  # after the rollback nothing reaches v3, also while Serve reconfigures the router
            assert sdk.predict("demo", "fraud-canary", _rows(deploy_env, 1), client=c)["model_version"] == 1
        events = c.get("/audit", project="demo", object="fraud-canary")
        logged = [e for e in sdk.logs("demo", "fraud-canary", limit=1000, client=c) if "error" in e]
    assert logged and all(cause in e["error"] and e["model_version"] == 3 for e in logged), logged[:3]
    assert all(e["request_id"] for e in logged)  # each failure can be found by its request id
    actions = [e["action"] for e in events]
    assert "deployment.rollout" in actions and "deployment.auto_rollback" in actions


def test_a_healthy_canary_steps_up_to_all_traffic(deploy_env) -> None:
    rollout = {"steps": [30, 100], "step_seconds": 1, "slo": {"min_requests": 5, "max_p99_ms": 5000}}
    _create(deploy_env, "fraud-steps", rollout=rollout)
    with _client(deploy_env) as c:
        sdk.rollout("demo", "fraud-steps", 2, client=c)
    state, versions, failures = _drive(deploy_env, "fraud-steps", lambda d: d["stable_version"] == 2)
    assert failures == [] and versions.get(2, 0) > 0
    assert state["traffic"] == {"2": 100} and state["details"]["previous_version"] == 1
    with _client(deploy_env) as c:
        actions = [e["action"] for e in c.get("/audit", project="demo", object="fraud-steps")]
    assert "deployment.canary_step" in actions and "deployment.promote" in actions


def test_shadow_mirrors_without_answering_then_blue_green_switches(deploy_env) -> None:
    _create(deploy_env, "fraud-shadow")
    with _client(deploy_env) as c:
        sdk.rollout("demo", "fraud-shadow", 2, strategy="shadow", client=c)
        _wait(c, "fraud-shadow", lambda d: d["details"].get("candidate_ready") is True)
        _router_applies(c, "fraud-shadow", lambda policy: policy["shadow"] == 2)
        seen = {
            sdk.predict("demo", "fraud-shadow", _rows(deploy_env, 2), client=c)["model_version"]
            for _ in range(30)
        }
        assert seen == {1}  # the shadow's answers are never returned
        deadline = time.monotonic() + 30
        while (shadow := sdk.stats("demo", "fraud-shadow", client=c)["shadow"])["requests"] < 30:
            assert time.monotonic() < deadline, shadow
            time.sleep(0.2)
        assert shadow["version"] == 2 and shadow["mean_abs_diff"] is not None
        sdk.rollback("demo", "fraud-shadow", reason="shadow compared", client=c)
        state = _wait(c, "fraud-shadow", lambda d: d["candidate_version"] is None)
        assert state["stable_version"] == 1
        sdk.rollout("demo", "fraud-shadow", 2, strategy="blue_green", client=c)
        state = _wait(c, "fraud-shadow", lambda d: d["stable_version"] == 2 and _healthy(d))
        _router_applies(c, "fraud-shadow", lambda policy: set(policy["traffic"]) == {"2"})  # moments later
        assert sdk.predict("demo", "fraud-shadow", _rows(deploy_env, 1), client=c)["model_version"] == 2
        sdk.rollback("demo", "fraud-shadow", reason="manual rollback drill", client=c)
        _wait(c, "fraud-shadow", lambda d: d["stable_version"] == 1 and _healthy(d))
        deadline = time.monotonic() + 60
        while sdk.predict("demo", "fraud-shadow", _rows(deploy_env, 1), client=c)["model_version"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_ab_split_is_stable_per_key(deploy_env) -> None:
    rollout = {"strategy": "ab", "ab_key": "user_id", "ab_split": 50}
    _create(deploy_env, "fraud-ab", rollout=rollout, missing_entities="impute")
    with _client(deploy_env) as c:
        sdk.rollout("demo", "fraud-ab", 2, client=c)
        _wait(c, "fraud-ab", lambda d: d["details"].get("candidate_ready") is True)
        _router_applies(c, "fraud-ab", lambda policy: policy["ab_version"] == 2)
        users = sorted({r["user_id"] for r in _rows(deploy_env, 50)})[:12]
        first = {}
        for user in users:
            row = {"user_id": user, "merchant_id": 1, "amount": 10.0}
            first[user] = sdk.predict("demo", "fraud-ab", [row], client=c)["model_version"]
            for _ in range(3):
                assert sdk.predict("demo", "fraud-ab", [row], client=c)["model_version"] == first[user]
        assert set(first.values()) == {1, 2}, first
        # the user chose impute: scored, and the decision record names what was imputed and why
        imputed = sdk.predict(
            "demo", "fraud-ab", [{"user_id": 999999, "merchant_id": 1, "amount": 1.0}], client=c
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                record = sdk.explain("demo", imputed["request_id"], client=c)["record"]
                break
            except NotFound:
                assert time.monotonic() < deadline, "no decision record"
                time.sleep(0.3)
        assert record["missing_entities"]["policy"] == "impute"
        named = {(e["key"], e["value"]) for e in record["missing_entities"]["imputed"]}
        assert ("user_id", 999999) in named
        sdk.promote("demo", "fraud-ab", reason="B won", client=c)
        assert _wait(c, "fraud-ab", _healthy)["stable_version"] == 2


def test_an_optimized_deployment_serves_the_faster_variant_and_a_lossy_one_is_refused(deploy_env) -> None:
    optimization = {"methods": ["int8", "onnx"], "tolerance": 0.01, "min_speedup": 1.0, "timing_repeats": 10}
    with _client(deploy_env) as c:
        sdk.create(
            "demo",
            "fraud-fast",
            "fraud",
            version="4",
            feature_service=SERVICE,
            num_cpus=0.25,
            optimization=optimization,
            client=c,
        )
        sdk.create(
            "demo",
            "fraud-fragile",
            "fraud",
            version="5",
            feature_service=SERVICE,
            num_cpus=0.25,
            optimization={"methods": ["int8"]},
            client=c,
        )
        fast = _wait(c, "fraud-fast", lambda d: _healthy(d) and "4" in d["details"].get("versions", {}))
        report = fast["details"]["versions"]["4"]["optimization"]
        assert set(report["methods"]) == {"int8", "onnx"}
        best = min(report["methods"], key=lambda m: call_cost(report["methods"][m]))
        faster = call_cost(report["original"]) >= call_cost(report["methods"][best])
        assert report["served"] == (best if faster else "original"), report  # min_speedup 1.0
        assert all(m["metric_drop"] <= 0.01 for m in report["methods"].values()), report
        answer = sdk.predict("demo", "fraud-fast", _rows(deploy_env), client=c)
        assert answer["model_version"] == 4 and all(0 <= p <= 1 for p in answer["predictions"])

        deadline = time.monotonic() + 240
        while (fragile := sdk.status("demo", "fraud-fragile", client=c))["status"] != "failed":
            assert time.monotonic() < deadline, fragile
            time.sleep(1)
        assert "int8 lowers holdout roc_auc" in fragile["reason"], fragile["reason"]
        assert "tolerance 0.005" in fragile["reason"]


def test_deploy_cli_flows(deploy_env, monkeypatch) -> None:
    from typer.testing import CliRunner

    from kosmos.platform.cli.main import app

    monkeypatch.setenv("KOSMOS_CLIENT__URL", deploy_env["url"])
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", deploy_env["admin"])
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "deploy",
            "create",
            "fraud-cli",
            "-m",
            "fraud",
            "-p",
            "demo",
            "--feature-service",
            SERVICE,
            "--wait",
            "--timeout",
            "240",
            "-o",
            "json",
        ],
    )
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["deploy", "list", "-p", "demo"])
    assert listed.exit_code == 0 and "fraud-cli" in listed.output
    missing = runner.invoke(app, ["deploy", "status", "nope", "-p", "demo"])
    assert missing.exit_code == 5 and "not found" in missing.output
    nothing = runner.invoke(app, ["deploy", "promote", "fraud-cli", "-p", "demo"])
    assert nothing.exit_code == 6, nothing.output  # no rollout to promote: a conflict
    rolled = runner.invoke(
        app, ["deploy", "rollout", "fraud-cli", "-v", "2", "--strategy", "direct", "-p", "demo", "--wait"]
    )
    assert rolled.exit_code == 0, rolled.output
    back = runner.invoke(
        app, ["deploy", "rollback", "fraud-cli", "-p", "demo", "--reason", "cli test", "--wait"]
    )
    assert back.exit_code == 0, back.output
    status = runner.invoke(app, ["deploy", "status", "fraud-cli", "-p", "demo", "-o", "json"])
    assert status.exit_code == 0 and '"stable_version": 1' in status.output
    scaled = runner.invoke(app, ["deploy", "scale", "fraud-cli", "-p", "demo", "--replicas", "2"])
    assert scaled.exit_code == 0, scaled.output
    deleted = runner.invoke(app, ["deploy", "delete", "fraud-cli", "-p", "demo"])
    assert deleted.exit_code == 0
    from ray import serve

    deadline = time.monotonic() + 90  # the reconciler removes the router and every version's app
    while any(a.startswith("kosmos--demo--fraud-cli") for a in serve.status().applications):
        assert time.monotonic() < deadline, "deleted deployment still runs in Ray Serve"
        time.sleep(0.5)


def test_killing_a_replica_under_load_loses_almost_nothing(deploy_env) -> None:
    import threading

    import ray
    from ray import serve

    _create(deploy_env, "fraud-kill", replicas=2)
    with _client(deploy_env) as c:  # warm: the first request opens the feature store
        sdk.predict("demo", "fraud-kill", _rows(deploy_env, 1), client=c)
    app = "kosmos--demo--fraud-kill--v1"
    results: list[bool] = []
    stop = threading.Event()

    def client_loop() -> None:
        with _client(deploy_env) as c:
            while not stop.is_set():
                try:
                    sdk.predict("demo", "fraud-kill", _rows(deploy_env, 1), client=c)
                    results.append(True)
                except Exception:
                    results.append(False)

    workers = [threading.Thread(target=client_loop) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(3)
    replicas = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"SERVE_REPLICA::{app}#")
    ]
    assert len(replicas) == 2, replicas
    killed_at = time.monotonic()
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    recovered = None
    deadline = killed_at + 120
    while recovered is None and time.monotonic() < deadline:
        overview = serve.status().applications[app].deployments["model"]
        running = overview.replica_states.get("RUNNING", 0)
        if running == 2 and time.monotonic() - killed_at > 1:
            recovered = time.monotonic() - killed_at
        time.sleep(0.2)
    time.sleep(2)
    enough = time.monotonic() + 60  # keep the load on until the rate means something on a slow machine
    while len(results) < 200 and time.monotonic() < enough:
        time.sleep(0.2)
    stop.set()
    for w in workers:
        w.join()
    failed = results.count(False)
    rate = failed / len(results)
    print(
        f"replica kill: {len(results)} requests, {failed} failed ({rate:.2%}), recovered in {recovered:.1f} s"
    )
    assert recovered is not None, "Serve did not bring the killed replica back within 120 s"
    assert len(results) > 100
    assert rate <= 0.005, f"{failed} of {len(results)} requests failed"


def test_an_alias_moved_outside_kosmos_is_not_rolled_out_until_kosmos_promotes_it(deploy_env) -> None:
    from mlflow import MlflowClient

    from kosmos.training import sdk as training

    def events(c: KosmosClient, action: str) -> list[dict]:
        return c.get("/audit", project="demo", object="fraud-follow", action=action)

    with _client(deploy_env) as c:
        training.promote("demo", "fraud", 2, alias="challenger", reason="a deployment follows it", client=c)
    state = _create(deploy_env, "fraud-follow", version="challenger")
    assert state["stable_version"] == 2
    # someone who reaches MLflow moves the alias behind Kosmos's back
    MlflowClient(deploy_env["settings"].mlflow_tracking_uri).set_registered_model_alias(
        "demo.fraud", "challenger", "1"
    )
    with _client(deploy_env) as c:
        deadline = time.monotonic() + 30
        while not (refused := events(c, "deployment.alias_refused")):
            assert time.monotonic() < deadline, "the reconciler never noticed the moved alias"
            time.sleep(0.5)
        assert refused[0]["details"]["version"] == 1 and "outside Kosmos" in refused[0]["details"]["reason"]
        time.sleep(2)  # a few more passes: still nothing rolls out
        state = sdk.status("demo", "fraud-follow", client=c)
        assert state["stable_version"] == 2 and state["candidate_version"] is None, state
        assert events(c, "deployment.follow_alias") == [] and len(events(c, "deployment.alias_refused")) == 1
        # the same move through Kosmos names who made it, and rolls out
        training.promote("demo", "fraud", 1, alias="challenger", reason="now through Kosmos", client=c)
        _wait(c, "fraud-follow", lambda d: d["candidate_version"] == 1, timeout_s=30)
        [followed] = events(c, "deployment.follow_alias")
    assert followed["details"]["promoted_by"] == "admin" and followed["details"]["version"] == 1
