"""The production profile's feature-jobs service: a project's feature code (definitions and
pipelines) runs there, in a process started with nothing but its own token, and never on the
control plane's host. The service here is the real one (`python -m kosmos.features.job_runner`)
on a loopback port; the store is the production one (Redis, Feast's SQL registry)."""

from __future__ import annotations

import io
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from pydantic import SecretStr

from kosmos.features import project_tables
from kosmos.features.repo import FeatureRepo
from kosmos.features.runs import last_run, run_pipelines
from kosmos.features.serving import get_online
from kosmos.platform.errors import InvalidInput, ServiceUnavailable
from kosmos.platform.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "biopsies"
sys.path.insert(0, str(EXAMPLE))
from biopsy_data import biopsies  # noqa: E402 - the example's module

FILES = {p.name: p.read_text() for p in sorted((EXAMPLE / "feature_repo").glob("*.py"))}
pytestmark = pytest.mark.parametrize("feature_settings", ["production"], indirect=True)


def _with_runner(settings: Settings, url: str, token: str) -> Settings:
    update = {"code_runner_url": url, "code_runner_token": SecretStr(token)}
    features = settings.features.model_copy(update=update)
    return settings.model_copy(update={"features": features})


@pytest.fixture
def clinic(feature_settings: Settings, feature_jobs: dict[str, Any]) -> Iterator[FeatureRepo]:
    settings = _with_runner(feature_settings, feature_jobs["url"], feature_jobs["token"])
    repo = FeatureRepo(settings, f"clinic-{uuid.uuid4().hex[:8]}")
    repo.init()
    buffer = io.BytesIO()
    biopsies()[0].to_parquet(buffer, index=False)
    project_tables.write_table(repo, "biopsies", buffer.getvalue())
    yield repo
    if repo.current_version() is not None:
        repo.store().teardown()


def test_definitions_and_pipelines_run_in_the_service_not_here(clinic, feature_jobs, monkeypatch) -> None:
    monkeypatch.setenv("KOSMOS_DATABASE__URL", "postgresql://kosmos:s3cret@db/kosmos")  # the server's
    scratch = str(feature_jobs["scratch"])
    probe = (
        "import os, tempfile\n"
        f"assert tempfile.gettempdir() == {scratch!r}, f'runs on the platform: {{tempfile.gettempdir()}}'\n"
        f"assert os.getcwd().startswith({scratch!r}), os.getcwd()  # a scratch folder, not the repository\n"
        "_seen = sorted(k for k in os.environ if k.startswith(('KOSMOS_', 'MLFLOW_', 'AWS_')))\n"
        "assert not _seen, f'the feature code sees {_seen}'\n"
    )
    applied = clinic.apply_files({**FILES, "probe.py": probe}, applied_by="ada")
    assert applied["version"] == 1 and applied["feature_views"] == ["biopsy_measurements", "biopsy_shape"]
    measurements = biopsies()[0]
    run = run_pipelines(clinic)  # the service loads probe.py too, then runs biopsy_shape
    assert run.rows == {"biopsy_shape": len(measurements)}
    written = pd.read_parquet(clinic.offline_dir / "biopsy_shape.parquet")  # came back, written here
    assert len(written) == len(measurements)
    values = get_online(clinic, {"patient_id": [1, 42]}, feature_service="diagnosis_v1")
    rows = measurements.set_index("patient_id").loc[[1, 42]]
    assert values["radius_spread"] == pytest.approx((rows["worst_radius"] / rows["mean_radius"]).tolist())
    assert not [p for p in Path(scratch).iterdir() if p.name.startswith("kosmos-job-")]  # scratch deleted


def test_a_problem_in_the_users_code_is_named_through_the_service(clinic) -> None:
    broken = FILES["pipelines.py"].replace('out["roundness"] =', 'out["roundish"] =')
    clinic.apply_files({**FILES, "pipelines.py": broken}, applied_by="ada")
    with pytest.raises(InvalidInput, match=r"pipeline biopsy_shape.*lacks columns \['roundness'\]"):
        run_pipelines(clinic)
    assert last_run(clinic)["status"] == "failed"
    with pytest.raises(InvalidInput, match=r"features\.py.*NameError"):
        broken_definitions = {**FILES, "features.py": FILES["features.py"] + "\nundefined_name\n"}
        clinic.apply_files(broken_definitions, applied_by="ada")


def test_the_service_takes_only_the_platform_s_token_and_a_service_down_changes_nothing(
    clinic, feature_jobs
) -> None:
    for headers in ({}, {"Authorization": "Bearer guess"}):
        refused = httpx.post(f"{feature_jobs['url']}/jobs", content=b"PK" * 10, headers=headers, timeout=10)
        assert refused.status_code == 401, refused.text
    garbage = httpx.post(
        f"{feature_jobs['url']}/jobs",
        content=b"not a zip",
        headers={"Authorization": f"Bearer {feature_jobs['token']}"},
        timeout=10,
    )
    assert garbage.status_code == 422 and "zip archive" in garbage.text, garbage.text
    wrong = FeatureRepo(_with_runner(clinic.settings, feature_jobs["url"], "guess"), clinic.project)
    with pytest.raises(ServiceUnavailable, match="answered 401"):
        wrong.apply_files(FILES, applied_by="ada")
    down = FeatureRepo(_with_runner(clinic.settings, "http://127.0.0.1:9", "x"), clinic.project)
    with pytest.raises(
        ServiceUnavailable, match=r"features\.code_runner_url=http://127\.0\.0\.1:9.*unreachable"
    ):
        down.apply_files(FILES, applied_by="ada")
    assert clinic.current_version() is None and not list(clinic.path.glob("*.py"))  # nothing half-applied
