"""Set up the demo project's features: data, repository, pipelines (idempotent).

The demo goes the way any project's features go: its tables are uploaded to the project, its
repository (``kosmos.features.demo.fraud_repo``) is applied as a version, its pipelines run.
"""

from __future__ import annotations

from kosmos.features.demo.fraud_data import generate, write
from kosmos.features.repo import feature_repo, template_files
from kosmos.features.runs import last_run, run_pipelines
from kosmos.platform.settings import Settings


def setup_demo(settings: Settings, project: str = "demo", rows: int = 100_000) -> bool:
    """Generate the fraud data, apply the fraud repository, materialize; True if work was done."""
    repo = feature_repo(settings, project)
    repo.init()
    did_work = False
    if not (repo.tables_dir / "transactions.parquet").is_file():
        write(generate(rows=rows), repo.tables_dir)
        did_work = True
    did_work |= bool(repo.apply_files(template_files("fraud"), applied_by="demo setup")["changed"])
    previous = last_run(repo)
    if did_work or previous is None or previous["status"] != "succeeded":
        run_pipelines(repo)
        did_work = True
    return did_work
