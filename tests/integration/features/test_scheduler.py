"""The scheduler runs every project's pipelines; one project's failure never stops the others."""

from __future__ import annotations

from kosmos.features.demo import write
from kosmos.features.repo import FeatureRepo
from kosmos.features.runs import last_run
from kosmos.features.scheduler import run_once
from kosmos.platform.settings import Settings


def test_run_once_covers_every_repository(tmp_path, fraud_data) -> None:
    settings = Settings(home=tmp_path / "home")
    healthy, broken = FeatureRepo(settings, "alpha"), FeatureRepo(settings, "beta")
    for repo in (healthy, broken):
        repo.init(template="fraud")
        repo.apply()
    write(fraud_data, healthy.tables_dir)  # beta has no tables: its run fails
    (settings.projects_dir / "not-a-repo").mkdir()

    outcomes = run_once(settings)

    assert outcomes["alpha"] == "succeeded"
    assert outcomes["beta"].startswith("failed") and "no table 'transactions'" in outcomes["beta"]
    assert "not-a-repo" not in outcomes
    assert last_run(healthy)["status"] == "succeeded"
    assert last_run(broken)["status"] == "failed"
    for repo in (healthy, broken):
        repo.store().teardown()


def test_each_project_runs_on_its_own_schedule(tmp_path, fraud_data) -> None:
    settings = Settings(home=tmp_path / "home", features={"materialize_every_minutes": 0})
    often, default = FeatureRepo(settings, "often"), FeatureRepo(settings, "default")
    for repo in (often, default):
        repo.init(template="fraud")
        write(fraud_data, repo.tables_dir)
    often.set_schedule(5)

    assert run_once(settings, only_due=True) == {"often": "succeeded"}  # the default is 0: off
    assert run_once(settings, only_due=True) == {}  # it ran a moment ago: due in 5 minutes
    assert often.describe()["schedule_minutes"] == 5 and default.describe()["schedule_minutes"] is None
    often.store().teardown()
