"""Set up the demo project's features: data, repository, pipelines (idempotent)."""

from __future__ import annotations

from kosmos.features.demo.fraud_data import generate, write
from kosmos.features.repo import feature_repo
from kosmos.features.runs import last_run, run_pipelines
from kosmos.platform.settings import Settings


def setup_demo(settings: Settings, project: str = "demo", rows: int = 100_000) -> bool:
    """Generate the fraud data, write and apply the Feast repo, materialize; True if work was done."""
    repo = feature_repo(settings, project)
    repo.init(template="fraud")
    did_work = False
    if not (repo.raw_dir / "transactions.parquet").is_file():
        write(generate(rows=rows), repo.raw_dir)
        did_work = True
    repo.apply()
    previous = last_run(repo)
    if did_work or previous is None or previous["status"] != "succeeded":
        run_pipelines(repo)
        did_work = True
    return did_work
