"""The data plane (Ray Serve's ingress on the run's Serve port): auth before the body, tenancy,
revocation within seconds, one hop while one version serves, online features."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from kosmos.deployment import sdk
from kosmos.features import sdk as features
from kosmos.platform import KosmosClient

pytestmark = pytest.mark.timeout(600)
SERVICE = "fraud_detection_v1"


def _rows(env: dict[str, Any], n: int = 1) -> list[dict[str, Any]]:
    return [
        {"user_id": int(r.user_id), "merchant_id": int(r.merchant_id), "amount": float(r.amount)}
        for r in env["rows"].head(n).itertuples()
    ]


@pytest.fixture(scope="module")
def plane(deploy_env: dict[str, Any]) -> dict[str, Any]:
    """A healthy deployment of the demo project, and the data plane's URL."""
    with KosmosClient(url=deploy_env["url"], token=deploy_env["admin"]) as c:
        deploy_env["fraud_main"](c)
        url = c.dataplane_url
    assert url != deploy_env["url"]  # not the control plane
    return {**deploy_env, "dataplane": url}


def _post(env: dict[str, Any], path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(f"{env['dataplane']}{path}", headers=headers, timeout=30, **kwargs)


def test_predict_and_online_features_through_the_data_plane(plane) -> None:
    answer = _post(plane, "/demo/fraud-main/predict", plane["viewer"], json={"inputs": _rows(plane, 2)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == 1 and len(answer.json()["predictions"]) == 2
    assert answer.headers["x-request-id"]
    row = _rows(plane)[0]
    with KosmosClient(url=plane["url"], token=plane["viewer"]) as c:
        online = features.get_online(
            "demo",
            {"user_id": [row["user_id"]], "merchant_id": [row["merchant_id"]]},
            feature_service=SERVICE,
            request_data={"amount": [row["amount"]]},
            client=c,
        )
    assert "merchant_fraud_rate_30d" in online


def test_direct_calls_still_reach_the_deployment_statistics(plane) -> None:
    """One version serving: the ingress calls the replica itself, and hands the router the
    outcomes in batches, so the deployment's statistics (and canary judgement) stay whole."""
    since = time.time()
    for _ in range(5):
        ok = _post(plane, "/demo/fraud-main/predict", plane["admin"], json={"inputs": _rows(plane)})
        assert ok.status_code == 200, ok.text
    with KosmosClient(url=plane["url"], token=plane["admin"]) as c:
        deadline = time.monotonic() + 10
        while (seen := sdk.stats("demo", "fraud-main", since=since, client=c).get("1", {})).get(
            "requests", 0
        ) < 5:
            assert time.monotonic() < deadline, seen
            time.sleep(0.3)


def test_no_token_is_a_401_before_the_body_is_read(plane) -> None:
    malformed = _post(plane, "/demo/fraud-main/predict", None, content=b"{not json")
    assert malformed.status_code == 401, malformed.text  # not 422: the body was never parsed
    assert malformed.json()["error"]["code"] == "unauthenticated"
    wrong = _post(plane, "/demo/fraud-main/predict", "kos_wrong", json={"inputs": []})
    assert wrong.status_code == 401


def test_a_body_over_the_limit_is_a_413(plane) -> None:
    limit = plane["settings"].dataplane.max_body_bytes
    body = b"[" + b"1," * (limit // 2) + b"1]"
    declared = _post(plane, "/demo/fraud-main/predict", plane["admin"], content=body)
    assert declared.status_code == 413, declared.text[:300]

    def chunked():  # no Content-Length: the limit holds while the body streams in
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    streamed = _post(plane, "/demo/fraud-main/predict", plane["admin"], content=chunked())
    assert streamed.status_code == 413, streamed.text[:300]
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_bad_rows_are_a_4xx_naming_each_field(plane) -> None:
    bad = [{"user_id": 1, "merchant_id": 1, "amount": "lots", "colour": "red"}]
    answer = _post(plane, "/demo/fraud-main/predict", plane["admin"], json={"inputs": bad})
    assert answer.status_code == 422
    fields = {d["field"] for d in answer.json()["error"]["details"]}
    assert {"inputs[0].amount", "inputs[0].colour"} <= fields
    malformed = _post(plane, "/demo/fraud-main/predict", plane["admin"], content=b"{not json")
    assert malformed.status_code == 422 and malformed.json()["error"]["details"][0]["field"] == "body"


def test_another_project_s_token_gets_the_same_404_as_a_missing_deployment(plane) -> None:
    with KosmosClient(url=plane["url"], token=plane["admin"]) as c:
        c.post("/projects", {"name": "other", "team": "risk"}) if not _has_project(c, "other") else None
        c.post("/users", {"name": "outsider"}) if not _has_user(c, "outsider") else None
        c.put("/projects/other/members/outsider", {"role": "admin"})
        outsider = c.post("/tokens", {"name": f"outsider-{time.time_ns()}", "user": "outsider"})["token"]
    body = {"inputs": _rows(plane)}
    existing = _post(plane, "/demo/fraud-main/predict", outsider, json=body)
    missing = _post(plane, "/nowhere/fraud-main/predict", outsider, json=body)
    assert existing.status_code == missing.status_code == 404
    said = existing.json()["error"]["message"]
    assert said.replace("demo", "nowhere") == missing.json()["error"]["message"]
    # and the outsider's own project has no deployment of that name: 404 again, never demo's
    own = _post(plane, "/other/fraud-main/predict", outsider, json=body)
    assert own.status_code == 404


def test_a_revoked_token_stops_working_within_5_seconds(plane) -> None:
    with KosmosClient(url=plane["url"], token=plane["admin"]) as c:
        name = f"short-{time.time_ns()}"
        token = c.post("/tokens", {"name": name})["token"]
        body = {"inputs": _rows(plane)}
        assert _post(plane, "/demo/fraud-main/predict", token, json=body).status_code == 200
        c.delete(f"/tokens/{name}")
        revoked_at = time.monotonic()
    refused_in_a_row = 0  # every ingress replica (two here) must refuse it, whichever answers
    while refused_in_a_row < 20:
        status = _post(plane, "/demo/fraud-main/predict", token, json=body).status_code
        refused_in_a_row = refused_in_a_row + 1 if status == 401 else 0
        assert status in (200, 401), status
        assert time.monotonic() - revoked_at < 5.0, "a revoked token still predicts after 5 s"
        time.sleep(0.05)


def test_killing_an_ingress_replica_under_load_loses_almost_nothing(plane) -> None:
    import threading

    import ray
    from ray import serve

    from kosmos.deployment.dataplane import APP

    body = {"inputs": _rows(plane)}
    results: list[bool] = []
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {plane['admin']}"}, timeout=30) as http:
            while not stop.is_set():
                try:
                    ok = (
                        http.post(f"{plane['dataplane']}/demo/fraud-main/predict", json=body).status_code
                        == 200
                    )
                except httpx.HTTPError:
                    ok = False
                results.append(ok)

    workers = [threading.Thread(target=client_loop) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(3)
        replicas = [
            a
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith(f"SERVE_REPLICA::{APP}#")
        ]
        assert len(replicas) == 2, replicas
        killed_at = time.monotonic()
        ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
        recovered = None
        while recovered is None and time.monotonic() < killed_at + 90:
            deployments = serve.status().applications[APP].deployments.values()
            running = sum(d.replica_states.get("RUNNING", 0) for d in deployments)
            if running == 2 and time.monotonic() - killed_at > 1:
                recovered = time.monotonic() - killed_at
            time.sleep(0.2)
        # what fails is what was in flight on the killed replica (HAProxy does not resend a POST):
        # at most the 4 clients' requests, judged over a load of 1,000 requests (about 15 s here)
        enough = time.monotonic() + 90
        while len(results) < 1000 and time.monotonic() < enough:
            time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            w.join()
    failed = results.count(False)
    rate = failed / len(results)
    print(f"ingress kill: {len(results)} requests, {failed} failed ({rate:.2%}), recovered in {recovered} s")
    # a new replica is a fresh Python process importing the platform: 10-20 s on an idle 2-core VM,
    # more when CI runs beside it; what the user sees is the failure count below, not this
    assert recovered is not None and recovered <= 60, f"the ingress came back after {recovered} s"
    assert len(results) >= 500 and failed <= 4
    assert rate <= 0.005, f"{failed} of {len(results)} requests failed"


def _has_project(c: KosmosClient, name: str) -> bool:
    return name in {p["name"] for p in c.get("/projects")}


def _has_user(c: KosmosClient, name: str) -> bool:
    return name in {u["name"] for u in c.get("/users")}
