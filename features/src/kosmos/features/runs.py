"""Running the feature pipelines and materializing into the online store.

One run at a time per project (a file lock, so the scheduler and a REST call
cannot interleave). Each run's outcome is written to ``pipeline_status.json``:
a failed materialization says so there, and the next run repairs it, because
Feast only advances a view's materialization watermark when that view succeeded.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from kosmos.features.pipelines import TRANSACTIONS_SCHEMA, USERS_SCHEMA, RawTables, get_pipeline, validate
from kosmos.features.repo import FeatureRepo
from kosmos.platform.errors import NotFound

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


@contextmanager
def _exclusive(repo: FeatureRepo) -> Iterator[None]:
    lock = repo.path / "data" / ".pipeline.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_raw(repo: FeatureRepo) -> RawTables:
    """The project's raw tables, checked against their schema."""
    paths = {name: repo.raw_dir / f"{name}.parquet" for name in ("transactions", "users")}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise NotFound(f"raw data missing for project {repo.project!r}: {', '.join(missing)}")
    tx = pd.read_parquet(paths["transactions"])
    users = pd.read_parquet(paths["users"])
    validate(tx, TRANSACTIONS_SCHEMA, "transactions")
    validate(users, USERS_SCHEMA, "users")
    return RawTables(transactions=tx, users=users)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def compute_offline(repo: FeatureRepo) -> dict[str, int]:
    """Recompute every pipeline-backed view's offline source from the raw data; rows per view."""
    raw = load_raw(repo)
    rows = {}
    for view in repo.store().list_feature_views():
        pipeline = view.tags.get("kosmos.pipeline")
        if pipeline:
            frame = get_pipeline(pipeline)(raw)
            _write_parquet(frame, Path(view.batch_source.path))
            rows[view.name] = len(frame)
    return rows


def run_pipelines(
    repo: FeatureRepo, *, compute: bool = True, materialize: bool = True, end: datetime | None = None
) -> PipelineRun:
    """Recompute the offline sources, then materialize incrementally into the online store.

    The outcome, including a failure part-way through materialization, is written to
    ``pipeline_status.json``; running again repairs what a failed run left behind.
    """
    repo.require()
    with _exclusive(repo):
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
