"""Running the feature pipelines and materializing into the online store.

A pipeline is the project's own function over its tables (see
:mod:`kosmos.features.user_code`). One run or apply at a time per project (a file
lock, so the scheduler and a REST call cannot interleave). Each run's outcome is
written to ``pipeline_status.json``: a failed materialization says so there, and
the next run repairs it, because Feast only advances a view's materialization
watermark when that view succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kosmos.features.code_runner import runner_for
from kosmos.features.definitions import PIPELINE_TAG, source_path
from kosmos.features.repo import FeatureRepo

log = logging.getLogger(__name__)


@dataclass
class PipelineRun:
    """The outcome of one run, as stored in ``pipeline_status.json``."""

    project: str
    status: str = "running"
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    materialized_until: str | None = None
    seconds: float | None = None
    error: str | None = None


def status_path(repo: FeatureRepo) -> Path:
    return repo.path / "data" / "pipeline_status.json"


def last_run(repo: FeatureRepo) -> dict[str, Any] | None:
    try:
        return json.loads(status_path(repo).read_text())
    except FileNotFoundError:
        return None


def _save(repo: FeatureRepo, run: PipelineRun) -> None:
    path = status_path(repo)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(run), indent=2))
    os.replace(tmp, path)


PIPELINE_TIMEOUT_S = 3600.0


def pipeline_jobs(repo: FeatureRepo) -> list[dict[str, Any]]:
    """What the child process runs: per pipeline-backed view, its function and output columns."""
    jobs = []
    for view in repo.store().list_feature_views():
        pipeline = view.tags.get(PIPELINE_TAG)
        if not pipeline:
            continue
        source = view.batch_source
        timestamps = [c for c in (source.timestamp_field, source.created_timestamp_column) if c]
        columns = [*view.join_keys, *timestamps, *(f.name for f in view.features)]
        jobs.append(
            {
                "view": view.name,
                "pipeline": pipeline,
                "output": str(source_path(repo, source)),
                "columns": list(dict.fromkeys(columns)),
                "timestamps": timestamps,
            }
        )
    return jobs


def compute_offline(repo: FeatureRepo) -> dict[str, int]:
    """Run every pipeline-backed view's function over the project's tables; rows per view.

    The user's code runs in a child process or the feature-jobs service
    (:mod:`kosmos.features.code_runner`), never here.
    """
    jobs = pipeline_jobs(repo)
    if not jobs:
        return {}
    request = {
        "command": "run",
        "repo": str(repo.path),
        "files": repo.files(),
        "tables": str(repo.tables_dir),
        "jobs": jobs,
    }
    return runner_for(repo.settings).run(request, timeout_s=PIPELINE_TIMEOUT_S)["rows"]


def run_pipelines(
    repo: FeatureRepo, *, compute: bool = True, materialize: bool = True, end: datetime | None = None
) -> PipelineRun:
    """Recompute the offline sources, then materialize incrementally into the online store.

    The outcome, including a failure part-way through materialization, is written to
    ``pipeline_status.json``; running again repairs what a failed run left behind.
    """
    repo.require()
    with repo.lock():
        run = PipelineRun(project=repo.project)
        started = time.perf_counter()
        _save(repo, run)
        try:
            if compute:
                run.rows = compute_offline(repo)
            if materialize:
                until = end or datetime.now(UTC)
                repo.store().materialize_incremental(end_date=until)
                run.materialized_until = until.isoformat()
            run.status = "succeeded"
        except Exception as exc:
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}"
            log.exception("feature pipelines of %s failed", repo.project)
            raise
        finally:
            run.finished_at = datetime.now(UTC).isoformat()
            run.seconds = round(time.perf_counter() - started, 3)
            _save(repo, run)
        return run
