"""A project's own feature repository: applied as versions, checked before anything changes."""

from __future__ import annotations

import io
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from kosmos.features import project_tables
from kosmos.features.repo import FeatureRepo
from kosmos.features.runs import last_run, run_pipelines
from kosmos.features.serving import get_online
from kosmos.platform.errors import InvalidInput
from kosmos.platform.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "biopsies"
sys.path.insert(0, str(EXAMPLE))
from biopsy_data import biopsies  # noqa: E402 - the example's module

FILES = {p.name: p.read_text() for p in sorted((EXAMPLE / "feature_repo").glob("*.py"))}


def _upload(repo: FeatureRepo, name: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    project_tables.write_table(repo, name, buffer.getvalue())


@pytest.fixture(scope="module")
def measurements() -> pd.DataFrame:
    return biopsies()[0]


@pytest.fixture
def clinic(feature_settings: Settings, measurements: pd.DataFrame):
    repo = FeatureRepo(feature_settings, f"clinic-{uuid.uuid4().hex[:8]}")
    repo.init()
    _upload(repo, "biopsies", measurements)
    yield repo
    if repo.current_version() is not None:
        repo.store().teardown()


def test_a_users_repository_applies_as_versions_and_serves_its_own_entities(clinic, measurements) -> None:
    applied = clinic.apply_files(FILES, applied_by="ada")
    assert applied["version"] == 1 and applied["changed"]
    assert applied["feature_views"] == ["biopsy_measurements", "biopsy_shape"]
    run = run_pipelines(clinic)
    assert run.rows == {"biopsy_shape": len(measurements)}

    values = get_online(clinic, {"patient_id": [1, 42]}, feature_service="diagnosis_v1")
    rows = measurements.set_index("patient_id").loc[[1, 42]]
    assert values["mean_radius"] == rows["mean_radius"].tolist()  # the table, as uploaded
    expected = (rows["worst_radius"] / rows["mean_radius"]).tolist()  # the pipeline's output
    assert values["radius_spread"] == pytest.approx(expected)

    again = clinic.apply_files(FILES, applied_by="ada")
    assert again["version"] == 1 and not again["changed"]

    # v2 drops the pipeline's view: `feast apply` semantics, the registry no longer has it
    head, rest = FILES["features.py"].split("biopsy_shape = FeatureView(")
    service = "diagnosis_v1 =" + rest.split("diagnosis_v1 =")[1]
    service = service.replace("[biopsy_measurements, biopsy_shape]", "[biopsy_measurements]")
    smaller = {"features.py": head + service}
    second = clinic.apply_files(smaller, applied_by="ada")
    assert second["version"] == 2 and second["feature_views"] == ["biopsy_measurements"]
    assert sorted(p.name for p in clinic.path.glob("*.py")) == ["features.py"]
    assert [v["version"] for v in clinic.versions()] == [1, 2]
    assert [v["applied_by"] for v in clinic.versions()] == ["ada", "ada"]
    assert clinic.version_files(1) == FILES


def _break(replace: str, by: str, count: int = -1) -> dict[str, str]:
    assert replace in FILES["features.py"]
    return {**FILES, "features.py": FILES["features.py"].replace(replace, by, count)}


DOCTOR = "entities=[Entity(name='doctor', join_keys=['doctor_id'])],\n    ttl=timedelta(days=365),\n"
BAD = {
    "syntax": (_break("import timedelta", "import timedelta("), "features.py", "cannot load"),
    "undefined-entity": (
        _break("entities=[patient],\n    ttl=timedelta(days=365),\n", DOCTOR, count=1),
        "biopsy_measurements.entities",
        "no entity 'doctor'",
    ),
    "missing-pipeline": (
        _break('"kosmos.pipeline": "biopsy_shape"', '"kosmos.pipeline": "biopsy_shapes"'),
        "biopsy_shape.tags.kosmos.pipeline",
        "no function 'biopsy_shapes'",
    ),
    "source-outside": (
        _break('path="data/tables/biopsies.parquet"', 'path="../../other/feature_repo/data/x.parquet"'),
        "biopsies_table.path",
        "must lie inside",
    ),
    "pipeline-over-table": (
        _break('path="data/offline/biopsy_shape.parquet"', 'path="data/tables/biopsies.parquet"'),
        "biopsy_shape.tags.kosmos.pipeline",
        "never over a table or the stores",
    ),
    "pipeline-over-registry": (
        _break('path="data/offline/biopsy_shape.parquet"', 'path="data/registry.db"'),
        "biopsy_shape",
        "data/",
    ),
    "file-name": ({**FILES, "../escape.py": "x = 1"}, "files.../escape.py", "module names"),
}


@pytest.mark.parametrize("feature_settings", ["embedded"], indirect=True)  # checked before any store
@pytest.mark.parametrize(("files", "field", "reason"), list(BAD.values()), ids=list(BAD))
def test_a_bad_definition_is_named_and_changes_nothing(clinic, files, field, reason) -> None:
    clinic.apply_files(FILES, applied_by="ada")
    before, live = clinic.describe(), clinic.files()
    with pytest.raises(InvalidInput) as info:
        clinic.apply_files(files, applied_by="ada")
    problems = info.value.details
    assert any(field in p["field"] and reason in p["reason"] for p in problems), problems
    assert clinic.describe() == before and clinic.files() == live
    assert [v["version"] for v in clinic.versions()] == [1]


@pytest.mark.parametrize("feature_settings", ["embedded"], indirect=True)
def test_the_users_code_runs_without_the_servers_secrets(clinic, monkeypatch) -> None:
    monkeypatch.setenv("KOSMOS_DATABASE__URL", "postgresql://kosmos:s3cret@db/kosmos")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "kos_service_token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    probe = (
        "import os\n"
        "_seen = sorted(k for k in os.environ if k.startswith(('KOSMOS_', 'MLFLOW_', 'AWS_')))\n"
        "assert not _seen, f'the feature code sees {_seen}'\n"
    )
    applied = clinic.apply_files({**FILES, "probe.py": probe}, applied_by="ada")
    assert applied["version"] == 1
    run_pipelines(clinic)  # the pipeline's process loads probe.py too
    assert last_run(clinic)["status"] == "succeeded"


@pytest.mark.parametrize("feature_settings", ["embedded"], indirect=True)
def test_a_pipelines_frame_is_checked_against_its_view(clinic) -> None:
    broken = FILES["pipelines.py"].replace('out["roundness"] =', 'out["roundish"] =')
    clinic.apply_files({**FILES, "pipelines.py": broken}, applied_by="ada")
    with pytest.raises(InvalidInput, match=r"pipeline biopsy_shape.*lacks columns \['roundness'\]"):
        run_pipelines(clinic)
    assert last_run(clinic)["status"] == "failed"
    assert not (clinic.offline_dir / "biopsy_shape.parquet").exists()


@pytest.mark.parametrize("feature_settings", ["embedded"], indirect=True)
def test_templates_are_names_never_paths(clinic) -> None:
    with pytest.raises(InvalidInput, match=r"unknown template '\.\./fraud_repo'; valid: \['fraud'\]"):
        clinic.init(template="../fraud_repo")
