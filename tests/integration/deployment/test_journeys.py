"""Persona journeys: Kosmos as its users run it, on their own data, with least-privilege tokens.

The admin token only creates the project and its people (a data scientist with role developer,
a maintainer, a viewer) and their tokens, through the API; from then on each person acts with
their own token. The data is the test's own: merchant chargebacks with an integer and a
nullable feature, rows 1-3 days late, a backfill of a window more than 30 days old, and a label
table with its own microsecond times, unsorted, on a non-default index.

One project on the package's shared platform (``deploy_env``): isolated by project, not by
process. The steps depend on each other (a model is trained on the training set, deployed,
rolled out), so they run as one journey per person, in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline

import kosmos
from kosmos.deployment import sdk as deployments
from kosmos.deployment.drills import FailingModel
from kosmos.features import sdk as features
from kosmos.platform import KosmosClient
from kosmos.platform.errors import Forbidden, UnknownEntity
from kosmos.platform.settings import get_settings
from kosmos.training import sdk as training
from kosmos.training.sweeps import sweep
from kosmos.training.tracking import TrainingRun, run
from kosmos.training.trainers.mlp import train_mlp

HERE = Path(__file__)
PROJECT = "chargebacks"
SERVICE = "chargebacks_v1"
COLUMNS = ["disputes", "disputed_amount"]
NOW = datetime.now(UTC).replace(microsecond=0)
pytestmark = pytest.mark.timeout(900)

FEATURE_REPO = Path(__file__).resolve().parents[2] / "data" / "chargebacks_repo"  # its own Feast files


def _events(merchants: range, days: list[float], risk: np.ndarray, seed: int) -> pd.DataFrame:
    """One row per merchant and day: disputes (an integer) and the disputed amount (5% null)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        [(m, NOW - timedelta(days=d, seconds=int(rng.integers(0, 3_600)))) for m in merchants for d in days],
        columns=["merchant_id", "event_timestamp"],
    )
    rate = risk[frame["merchant_id"].to_numpy()]
    frame["disputes"] = rng.poisson(1 + 20 * rate).astype("int64")
    frame["disputed_amount"] = (frame["disputes"] * rng.uniform(20, 80, len(frame))).round(2)
    frame.loc[frame.sample(frac=0.05, random_state=seed).index, "disputed_amount"] = np.nan
    # most rows are known an hour after their event; one in ten arrives 1-3 days late
    late = rng.random(len(frame)) < 0.1
    delay = np.where(late, rng.uniform(24, 72, len(frame)), 1.0)
    frame["created"] = frame["event_timestamp"] + pd.to_timedelta(delay, unit="h")
    return frame


def _data() -> dict[str, Any]:
    rng = np.random.default_rng(11)
    risk = rng.beta(1, 4, 161)  # merchant ids 1..160; index 0 unused
    busy = _events(range(1, 121), [float(d) for d in range(58, 3, -1)], risk, seed=1)
    quiet = _events(range(121, 161), [60.0, 50.0, 45.0], risk, seed=2)  # nothing after 45 days ago
    table = pd.concat([busy, quiet], ignore_index=True)
    table = table[table["created"] < NOW - timedelta(minutes=10)].reset_index(drop=True)
    # labels: a chargeback decision per merchant and time, with microseconds, unsorted, own index
    n = 3_000
    ids = rng.integers(1, 121, n)
    at = NOW - pd.to_timedelta(rng.uniform(5, 50, n), unit="D")
    labels = pd.DataFrame({"merchant_id": ids, "event_timestamp": at.floor("us")})
    labels["label"] = (rng.random(n) < 0.1 + 0.8 * risk[ids]).astype("int64")
    labels = labels.sample(frac=1.0, random_state=3)
    labels.index = pd.Index(rng.permutation(n) * 7 + 100_000, name="case")
    # day two: 1-3 days late rows for 40 busy merchants; a backfill 35 days back for the quiet ones
    late = _events(range(1, 41), [2.0], risk, seed=3).assign(created=NOW - timedelta(minutes=1))
    backfill = _events(range(121, 161), [35.0], risk, seed=4).assign(created=NOW - timedelta(minutes=1))
    return {"table": table, "labels": labels, "late": late, "backfill": backfill}


class Person:
    """One user of the project: their token, their client, their shell."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.client = KosmosClient(url=url, token=token)

    def kosmos(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KOSMOS_CLIENT__URL": self.url, "KOSMOS_CLIENT__TOKEN": self.token}
        return subprocess.run(
            [str(Path(sys.executable).parent / "kosmos"), *args],
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="module")
def people(deploy_env) -> dict[str, Person]:
    """The admin creates the project, three people and their project-scoped tokens; nothing else."""
    url = deploy_env["url"]
    with KosmosClient(url=url, token=deploy_env["admin"]) as admin:
        admin.post("/projects", {"name": PROJECT, "team": "risk"})
        tokens = {}
        for user, role in [("dana", "developer"), ("max", "maintainer"), ("val", "viewer")]:
            admin.post("/users", {"name": user})
            admin.put(f"/projects/{PROJECT}/members/{user}", {"role": role})
            body = {"name": f"{user}-laptop", "user": user, "project": PROJECT}
            tokens[user] = admin.post("/tokens", body)["token"]
    return {user: Person(url, token) for user, token in tokens.items()}


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return _data()


def _score(model: Any, frame: pd.DataFrame) -> float:
    return float(roc_auc_score(frame["label"], model.predict_proba(frame[COLUMNS])[:, 1]))


def _train(r: TrainingRun, frame: pd.DataFrame, params: dict[str, Any]) -> dict[str, float]:
    """A sweep's trial: a logistic regression, a tree model or a torch MLP on the two features."""
    frame = frame.astype(dict.fromkeys(COLUMNS, "float64")).sort_values("event_timestamp")
    cut = int(len(frame) * 0.8)
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    kind = params["model"]
    if kind == "mlp":
        return train_mlp(r, frame, {"max_epochs": 4, "hidden": 8}, columns=COLUMNS)
    inputs = train[COLUMNS]
    if kind == "logreg":
        model = make_pipeline(SimpleImputer(), LogisticRegression(C=params["C"]))
    else:
        model = HistGradientBoostingClassifier(max_iter=params["max_iter"], max_depth=3)
    model.fit(inputs, train["label"])
    r.log_params(params)
    metrics = {"roc_auc": _score(model, test)}
    r.log_metrics(metrics)
    r.log_model(model, input_example=inputs.head(5))
    return metrics


def _online(person: Person, ids: list[int]) -> pd.DataFrame:
    got = features.get_online(PROJECT, {"merchant_id": ids}, feature_service=SERVICE, client=person.client)
    return pd.DataFrame(got).set_index("merchant_id")


def _latest(table: pd.DataFrame, ids: list[int]) -> pd.Series:
    return table.sort_values("event_timestamp").groupby("merchant_id").last().loc[ids, "disputes"]


def _rollout(person: Person, version: int) -> subprocess.Popen[str]:
    """`kosmos deploy rollout ... --wait`, as a deployer runs it, in the background."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "kosmos"), "deploy", "rollout", "cb-scorer",
         "-v", str(version), "-p", PROJECT, "--wait", "--timeout", "300"],
        env={**os.environ, "KOSMOS_CLIENT__URL": person.url, "KOSMOS_CLIENT__TOKEN": person.token},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _drive(c: KosmosClient, until: Callable[[dict[str, Any]], bool]) -> int:
    """Predict until ``until(status)``; the number of requests that failed."""
    deadline = time.monotonic() + 240
    failures = 0
    while not until(state := deployments.status(PROJECT, "cb-scorer", client=c)):
        assert time.monotonic() < deadline, state
        for _ in range(5):
            try:
                deployments.predict(PROJECT, "cb-scorer", [{"merchant_id": 11}], client=c)
            except Exception:
                failures += 1
        time.sleep(0.2)
    return failures


def test_a_data_scientist_goes_from_their_own_table_to_a_monitored_endpoint(
    deploy_env, people, data, monkeypatch
) -> None:
    dana, max_, val = people["dana"], people["max"], people["val"]
    settings = deploy_env["settings"]
    monkeypatch.setenv("KOSMOS_MLFLOW__TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.chdir(settings.home)  # MLflow keeps a SQLite store's artifacts in ./mlruns
    get_settings.cache_clear()

    # -- the data scientist's features: upload, apply, run -----------------------------------------
    c = dana.client
    features.upload_table(PROJECT, "chargebacks", data["table"], client=c)
    applied = features.apply_repository(PROJECT, FEATURE_REPO, client=c)
    assert applied["version"] == 1 and applied["feature_services"] == [SERVICE]
    first = features.run_pipelines(PROJECT, client=c)
    assert first["status"] == "succeeded", first
    assert first["online"]["merchant_chargebacks"]["entities"] == 160

    # online features by SDK (the data plane) and by CLI agree with the table's latest rows
    ids = [3, 7, 130]
    online = _online(dana, ids)
    assert online["disputes"].tolist() == _latest(data["table"], ids).tolist()
    cli = dana.kosmos("features", "get", "-p", PROJECT, "-e", "merchant_id=7", "-s", SERVICE, "-o", "json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["disputes"] == [int(online.loc[7, "disputes"])]

    # the point-in-time training set: the label frame as sent (order, index, dtypes, microseconds)
    labels = data["labels"]
    frame = features.get_training_set(PROJECT, labels, feature_service=SERVICE, client=c)
    pd.testing.assert_frame_equal(frame[labels.columns], labels)
    assert str(frame["disputes"].dtype) == "Int64"
    assert labels.reset_index().merge(frame, on=list(labels.columns)).shape[0] == len(labels)
    known = data["table"].assign(known=lambda t: t["created"])
    probe = frame.iloc[0]
    before = known[
        (known.merchant_id == probe.merchant_id) & (known.event_timestamp <= probe.event_timestamp)
    ].sort_values(["event_timestamp", "created"])
    assert probe["disputes"] == before["disputes"].iloc[-1]  # the latest row at the label's time, no later
    training.register_dataset(PROJECT, "cb-set", frame, feature_service=SERVICE, client=c)

    # -- training as the developer, through kosmos.login: three model kinds, one sweep ------------
    kosmos.login(url=dana.url, token=dana.token)
    grid = [{"model": "logreg", "C": 0.5}, {"model": "hgb", "max_iter": 60}, {"model": "mlp"}]
    swept = sweep(
        PROJECT, "chargeback-risk", grid, _train, metric="roc_auc", dataset="cb-set", code_path=HERE
    )
    table = swept.table.set_index("run_id")
    assert swept.best_params == next(g for g in grid if g["model"] == table.loc[swept.best_run_id, "model"])
    assert swept.best_value > 0.65, swept.table  # the labels follow the merchants' dispute rates
    runs = training.list_runs(PROJECT, client=c)
    assert {r["tags"].get("kosmos.user") for r in runs if r["run_id"] in table.index} == {"dana"}
    best = training.register_model(PROJECT, "cb-risk", swept.best_run_id, client=c)
    with run(PROJECT, "chargeback-risk", dataset="cb-set", code_path=HERE) as drill:
        drill.log_pyfunc(FailingModel(), input_example=frame[COLUMNS].astype("float64").head(5))
    failing = training.register_model(PROJECT, "cb-risk", drill.run_id, client=c)

    # a developer cannot make a champion; the maintainer can, with a reason
    with pytest.raises(Forbidden):
        training.promote(PROJECT, "cb-risk", best["version"], reason="mine", client=c)
    training.promote(PROJECT, "cb-risk", best["version"], reason="best of the sweep", client=max_.client)
    lineage = training.lineage(PROJECT, "cb-risk", "champion", client=val.client)
    assert lineage["features"]["version"] == 1 and lineage["run"]["run_id"] == swept.best_run_id

    # -- day two: late rows and a backfill arrive; the next run serves them -----------------------
    arrived = pd.concat([data["late"], data["backfill"]], ignore_index=True)
    features.upload_table(PROJECT, "chargebacks", pd.concat([data["table"], arrived]), client=c)
    second = features.run_pipelines(PROJECT, client=c)
    wrote = second["online"]["merchant_chargebacks"]
    assert second["status"] == "succeeded" and wrote["late_rows"] == len(arrived), wrote
    assert pd.Timestamp(wrote["oldest_event"]) <= NOW - timedelta(days=35)
    changed = [*range(1, 41, 9), *range(121, 161, 9)]
    whole = pd.concat([data["table"], arrived])
    assert _online(dana, changed)["disputes"].tolist() == _latest(whole, changed).tolist()
    stats = features.feature_stats(PROJECT, "merchant_chargebacks", client=val.client)
    assert stats["online"]["newest_event"] and stats["online"]["freshness_seconds"] >= 0
    assert "disputes" in features.feature_drift(PROJECT, "merchant_chargebacks", client=val.client)["psi"]

    # -- the deployer (the same developer): online features, an unknown entity, a failed canary ---
    slo = {"min_requests": 5, "max_error_rate": 0.05, "max_p99_ms": 5000}  # 2 busy cores: judged on errors
    rollout = {"steps": [50, 100], "step_seconds": 2, "slo": slo}
    deployments.create(
        PROJECT, "cb-scorer", "cb-risk", feature_service=SERVICE, num_cpus=0.25, log_sample_rate=1.0,
        rollout=rollout, client=c,
    )  # fmt: skip
    state = deployments.wait(PROJECT, "cb-scorer", timeout_s=240, client=c)
    assert state["status"] == "healthy" and state["stable_version"] == best["version"], state
    looked_up = _online(dana, [60, 145])
    answer = deployments.predict(PROJECT, "cb-scorer", [{"merchant_id": 60}, {"merchant_id": 145}], client=c)
    assert answer["model_version"] == best["version"] and len(answer["predictions"]) == 2
    with pytest.raises(UnknownEntity, match="unknown merchant_id 999999"):
        deployments.predict(PROJECT, "cb-scorer", [{"merchant_id": 999999}], client=c)

    # a canary of the sweep's runner-up steps up to all traffic: --wait exits 0
    runner_up = training.register_model(PROJECT, "cb-risk", swept.table["run_id"].iloc[1], client=c)
    waiting = _rollout(dana, runner_up["version"])
    failures = _drive(c, lambda d: d["stable_version"] == runner_up["version"])
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 0 and failures == 0, (out, failures)

    # a version that fails every request rolls back by itself: --wait exits 8, whatever the
    # status says by the time it ends
    waiting = _rollout(dana, failing["version"])
    failures = _drive(
        c, lambda d: (d["details"].get("last_rollback") or {}).get("version") == failing["version"]
    )
    out, _ = waiting.communicate(timeout=120)
    assert waiting.returncode == 8, out
    assert f"v{failing['version']} was rolled back" in out
    assert 1 <= failures <= 3  # the SLO was lost at the first failure: the router stopped there
    state = deployments.status(PROJECT, "cb-scorer", client=val.client)
    assert state["stable_version"] == runner_up["version"] and state["candidate_version"] is None

    # explain and replay of the request, as the docs write them (options after the id)
    explained = val.kosmos("explain", answer["request_id"], "-p", PROJECT, "-o", "json")
    assert explained.returncode == 0, explained.stderr
    record = json.loads(explained.stdout)["record"]
    assert record["features"]["disputes"]["values"] == looked_up["disputes"].tolist()
    replayed = dana.kosmos("replay", answer["request_id"], "-p", PROJECT, "-o", "json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["exact"] is True

    deployments.delete(PROJECT, "cb-scorer", client=max_.client)


VIEWER_WRITES = [  # (method, path under /api/v1/projects/chargebacks)
    ("PUT", "/features/tables/chargebacks"),
    ("POST", "/features/apply"),
    ("POST", "/features/pipelines/run"),
    ("POST", "/datasets/cb-set"),
    ("POST", "/models/cb-risk"),
    ("POST", "/models/cb-risk/promote"),
    ("POST", "/deployments"),
    ("POST", "/deployments/cb-scorer/rollout"),
    ("DELETE", "/deployments/cb-scorer"),
]


def test_a_viewer_reads_everything_of_the_project_and_changes_nothing(people, data) -> None:
    val = people["val"]
    c = val.client
    assert features.list_features(PROJECT, client=c) is not None
    assert isinstance(training.list_models(PROJECT, client=c), list)
    assert isinstance(deployments.list_deployments(PROJECT, client=c), list)
    listed = val.kosmos("features", "tables", "-p", PROJECT, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    # every write is a 403 before its body is read: a body that is not even JSON changes nothing
    for method, path in VIEWER_WRITES:
        response = httpx.request(
            method,
            f"{val.url}/api/v1/projects/{PROJECT}{path}",
            headers={"Authorization": f"Bearer {val.token}"},
            content=b"\x00not json",
        )
        assert response.status_code == 403, (method, path, response.status_code, response.text)
    with pytest.raises(Forbidden):
        features.upload_table(PROJECT, "chargebacks", data["table"].head(3), client=c)
