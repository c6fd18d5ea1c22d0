"""Features through the doors: REST, SDK and CLI, each authorized by project."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kosmos.features import sdk
from kosmos.features.repo import feature_repo
from kosmos.features.serving import get_training_set
from kosmos.platform import Forbidden, InvalidInput, KosmosClient, NotFound
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.cli.main import app
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import Settings, get_settings
from kosmos.training import sdk as training


@pytest.fixture(scope="module")
def shared_features_server(
    tmp_path_factory, sqlite_template: Path, free_port, live_platform, dataplane, fraud_data
) -> Iterator[dict]:
    """One platform for the module (about 30 s to start): the tests read the fraud project, and
    what they write goes to projects of their own ("other", "fraud-copy")."""
    home = tmp_path_factory.mktemp("features-api")
    sqlite_url = f"sqlite:///{home / 'kosmos.db'}"
    shutil.copy(sqlite_template, home / "kosmos.db")
    settings = Settings(home=home / "home", database={"url": sqlite_url})
    database = Database(sqlite_url)
    admin = bootstrap(settings, database).token
    with live_platform(settings, database, free_port()) as url, dataplane(settings):  # online features
        with KosmosClient(url=url, token=admin) as c:
            c.post("/projects", {"name": "fraud", "team": "risk"})
            c.post("/projects", {"name": "other", "team": "risk"})
            c.post("/projects/fraud/features/init", {"template": "fraud"})
            for table in ("transactions", "users"):  # through the door a user has, not the folder
                sdk.upload_table("fraud", table, getattr(fraud_data, table), client=c)
            run = c.post("/projects/fraud/features/pipelines/run", {"materialize": True})
            assert run["status"] == "succeeded"
            c.post("/users", {"name": "vic"})
            c.put("/projects/fraud/members/vic", {"role": "viewer"})
            viewer = c.post("/tokens", {"name": "v", "user": "vic", "project": "fraud"})["token"]
            c.post("/users", {"name": "otto"})
            c.put("/projects/other/members/otto", {"role": "admin"})
            outsider = c.post("/tokens", {"name": "o", "user": "otto", "project": "other"})["token"]
        yield {"url": url, "admin": admin, "viewer": viewer, "outsider": outsider, "settings": settings}
    database.dispose()


@pytest.fixture
def features_server(shared_features_server: dict, monkeypatch) -> dict:
    monkeypatch.setenv("KOSMOS_CLIENT__URL", shared_features_server["url"])  # for the CLI's default client
    return shared_features_server


def test_viewer_reads_but_cannot_run_pipelines(features_server) -> None:
    with KosmosClient(url=features_server["url"], token=features_server["viewer"]) as c:
        described = sdk.list_features("fraud", client=c)
        assert "fraud_detection_v1" in described["feature_services"]
        assert described["last_run"]["status"] == "succeeded"
        values = sdk.get_online(
            "fraud", {"user_id": [1, 2]}, client=c, features=["user_transaction_stats:txn_count_7d"]
        )
        assert values["user_id"] == [1, 2] and len(values["txn_count_7d"]) == 2
        with pytest.raises(Forbidden):
            sdk.run_pipelines("fraud", client=c)
        with pytest.raises(Forbidden):
            c.post("/projects/fraud/features/init", {"template": "fraud"})


def test_own_repository_and_tables_through_the_doors(features_server, tmp_path, monkeypatch) -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "biopsies"
    table = tmp_path / "biopsies.csv"
    pd.read_csv(io.StringIO(_biopsies_csv(example))).to_csv(table, index=False)
    url = features_server["url"]
    with KosmosClient(url=url, token=features_server["viewer"]) as c:
        with pytest.raises(Forbidden):
            sdk.upload_table("fraud", "biopsies", table, client=c)
        with pytest.raises(Forbidden):
            sdk.apply_repository("fraud", example / "feature_repo", client=c)
        assert {t["table"] for t in sdk.list_tables("fraud", client=c)} == {"transactions", "users"}
    with KosmosClient(url=url, token=features_server["outsider"]) as c:
        with pytest.raises(NotFound):
            sdk.list_tables("fraud", client=c)
        with pytest.raises(NotFound):
            c.request("PUT", "/projects/fraud/features/tables/biopsies", content=b"PAR1")
    with KosmosClient(url=url, token=features_server["admin"]) as c:
        with pytest.raises(InvalidInput, match="not a parquet file") as info:
            c.request("PUT", "/projects/other/features/tables/biopsies", content=b"no parquet")
        assert info.value.details[0]["field"] == "body"
        with pytest.raises(InvalidInput) as info:
            c.request("PUT", "/projects/other/features/tables/Bad-Name", content=b"")
        assert info.value.details[0]["field"] == "table"
        uploaded = sdk.upload_table("other", "biopsies", table, client=c)  # a CSV becomes parquet
        assert uploaded["rows"] == 569 and uploaded["columns"]["measured_at"].startswith("timestamp")
        # a DVC-versioned dataset as a table: it names its version as the table's origin
        frame = pd.read_csv(table).head(100)
        training.register_dataset("other", "lab-export", frame, client=c)
        published = training.dataset_as_feature_table("other", "lab-export", 1, client=c)
        assert published["table"] == "lab_export" and published["rows"] == 100
        origins = {t["table"]: t["origin"] for t in sdk.list_tables("other", client=c)}
        assert origins == {"biopsies": None, "lab_export": "kosmos-dataset://lab-export/v1"}

    # the CLI applies a folder: the admin's default client, on project "other"
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", features_server["admin"])
    get_settings.cache_clear()
    folder = str(example / "feature_repo")
    result = CliRunner().invoke(app, ["features", "apply", folder, "-p", "other"])
    assert result.exit_code == 0, result.output
    assert "other: applied as version 1" in result.output and "biopsy_shape" in result.output
    again = CliRunner().invoke(app, ["features", "apply", folder, "-p", "other"])
    assert "other: unchanged, still version 1" in again.output
    with KosmosClient(url=url, token=features_server["admin"]) as c:
        assert sdk.run_pipelines("other", client=c)["rows"] == {"biopsy_shape": 569}
        (version,) = sdk.list_versions("other", client=c)
        assert version["applied_by"] == "admin" and version["files"] == ["features.py", "pipelines.py"]
        audit = c.get("/audit", project="other")
        assert "features.apply" in {e["action"] for e in audit}


def _biopsies_csv(example: Path) -> str:
    sys.path.insert(0, str(example))
    from biopsy_data import biopsies

    return biopsies()[0].to_csv(index=False)


def test_another_projects_token_sees_nothing(features_server) -> None:
    with KosmosClient(url=features_server["url"], token=features_server["outsider"]) as c:
        with pytest.raises(NotFound):
            sdk.get_online("fraud", {"user_id": [1]}, client=c, feature_service="fraud_online_v1")
        with pytest.raises(NotFound):
            sdk.feature_stats("fraud", "user_transaction_stats", client=c)


def test_training_set_through_the_sdk_matches_feast(features_server, fraud_data) -> None:
    entities = fraud_data.transactions.sample(200, random_state=2)[
        ["transaction_id", "user_id", "merchant_id", "amount", "event_timestamp"]
    ]
    with KosmosClient(url=features_server["url"], token=features_server["admin"]) as c:
        remote = sdk.get_training_set("fraud", entities, feature_service="fraud_detection_v1", client=c)
        with pytest.raises(InvalidInput, match="timezone-aware"):
            naive = entities.assign(event_timestamp=entities["event_timestamp"].dt.tz_localize(None))
            sdk.get_training_set("fraud", naive, feature_service="fraud_detection_v1", client=c)
    local = get_training_set(
        feature_repo(features_server["settings"], "fraud"), entities, feature_service="fraud_detection_v1"
    )
    # the label frame comes back as it was sent: its order, its (sampled) index, its dtypes and
    # timestamps, so it merges back onto the labels; integer features stay integers
    assert list(remote.index) == list(entities.index)
    pd.testing.assert_frame_equal(remote[entities.columns], entities)
    assert str(remote["txn_count_7d"].dtype) == "Int64"
    key = "transaction_id"
    remote, local = (
        remote.sort_values(key).reset_index(drop=True),
        local.sort_values(key).reset_index(drop=True),
    )
    assert list(remote[key]) == list(local[key])
    pd.testing.assert_series_equal(remote["spend_24h"], local["spend_24h"], check_dtype=False)


def test_a_label_frame_over_the_body_limit_is_sent_in_parts(features_server, fraud_data, monkeypatch) -> None:
    """Labels with microsecond times, unsorted, more than one request can carry (a small part size
    here: 400k labels behave the same way, in parts of about 8 MB); a raw REST body over the
    route's limit is a 413 that says how to send it."""
    labels = fraud_data.transactions.sample(3_000, random_state=7)[
        ["user_id", "merchant_id", "amount", "event_timestamp"]
    ]
    labels = labels.assign(event_timestamp=labels["event_timestamp"] + pd.to_timedelta(123_457, unit="us"))
    labels.index = labels.index * 10 + 3  # a label table's own index
    monkeypatch.setattr(sdk, "CHUNK_BYTES", 50_000)
    with KosmosClient(url=features_server["url"], token=features_server["admin"]) as c:
        joined = sdk.get_training_set("fraud", labels, feature_service="fraud_detection_v1", client=c)
        pd.testing.assert_frame_equal(joined[labels.columns], labels)
        assert joined.merge(labels.reset_index(), on=list(labels.columns)).shape[0] == len(labels)
        whole = sdk.get_training_set(
            "fraud", labels.head(500), feature_service="fraud_detection_v1", client=c
        )
        pd.testing.assert_frame_equal(joined.head(500), whole)  # the parts join as the whole does
        big = {"entity_df": {"user_id": [123456789] * 2_000_000}, "feature_service": "fraud_detection_v1"}
        response = c._http.post("/api/v1/projects/fraud/features/training-set", json=big)
    assert response.status_code == 413 and "SDK" in response.json()["error"]["message"]


def test_stats_and_drift_through_the_sdk(features_server) -> None:
    with KosmosClient(url=features_server["url"], token=features_server["viewer"]) as c:
        stats = sdk.feature_stats("fraud", "merchant_stats", client=c)
        assert stats["rows"] > 0 and "merchant_fraud_rate_30d" in stats["features"]
        drift = sdk.feature_drift("fraud", "merchant_stats", client=c)
        assert set(drift["psi"]) == {"merchant_txn_count_30d", "merchant_fraud_rate_30d"}


def test_cli_get_and_exit_codes(features_server, monkeypatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("KOSMOS_CLIENT__TOKEN", features_server["viewer"])
    get_settings.cache_clear()
    out = runner.invoke(
        app,
        [
            "features",
            "get",
            "-p",
            "fraud",
            "-e",
            "user_id=3",
            "-e",
            "merchant_id=4",
            "-s",
            "fraud_online_v1",
            "-o",
            "json",
        ],
    )
    assert out.exit_code == 0, out.output
    values = json.loads(out.output)
    assert values["user_id"] == [3] and "merchant_fraud_rate_30d" in values
    out = runner.invoke(app, ["features", "get", "-p", "fraud", "-e", 'user_id="x"', "-s", "fraud_online_v1"])
    assert out.exit_code == 2 and "must be an integer" in out.output
    out = runner.invoke(app, ["features", "run", "-p", "fraud"])
    assert out.exit_code == 4
    listed = runner.invoke(app, ["features", "list", "-p", "fraud"])
    assert listed.exit_code == 0 and "fraud_detection_v1" in listed.output


def test_pipeline_runs_are_audited(features_server) -> None:
    with KosmosClient(url=features_server["url"], token=features_server["admin"]) as c:
        events = c.get("/audit", project="fraud", action="features.pipelines.run")
    assert events and events[0]["details"]["rows"]["user_transaction_stats"] > 0


def test_the_features_example_runs(features_server, tmp_path) -> None:
    root = Path(__file__).resolve().parents[3]
    script = root / "examples" / "features" / "online_and_training.py"
    source = script.read_text().replace('PROJECT = "demo"', 'PROJECT = "fraud"')
    copy = tmp_path / "example.py"
    copy.write_text(source)
    env = {
        **os.environ,
        "KOSMOS_CLIENT__URL": features_server["url"],
        "KOSMOS_CLIENT__TOKEN": features_server["admin"],
        "PYTHONWARNINGS": "ignore",
    }
    out = subprocess.run([sys.executable, str(copy)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fraud_detection_v1" in out.stdout and "amount_vs_user_mean_7d" in out.stdout
    assert "drifted features" in out.stdout

    # the fraud demo into a new project, the way any project's features go (examples/fraud)
    script = root / "examples" / "fraud" / "into_project.py"
    args = [sys.executable, str(script), "--project", "fraud-copy", "--rows", "3000"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "fraud-copy: feature repository v1, pipelines succeeded" in out.stdout
    with KosmosClient(url=features_server["url"], token=features_server["admin"]) as c:
        copied = sdk.list_features("fraud-copy", client=c)
    assert copied["feature_services"] == ["fraud_detection_v1", "fraud_online_v1"]


def test_the_generator_example_writes_parquet(tmp_path) -> None:
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "fraud" / "generate.py"),
            "--rows",
            "2000",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert len(pd.read_parquet(tmp_path / "transactions.parquet")) == 2000
