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

import pandas as pd

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
    online: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stored view: what this run wrote to the online store (``OnlineWrite``)."""
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
        previous = last_run(repo)
        run = PipelineRun(project=repo.project)
        started = time.perf_counter()
        _save(repo, run)
        try:
            if compute:
                run.rows = compute_offline(repo)
            if materialize:
                until = end or datetime.now(UTC)
                run.online = materialize_changes(repo, until, previous)
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


def _read_source(repo: FeatureRepo, view: Any) -> pd.DataFrame | None:
    """A view's offline rows: its join keys and timestamps (None: not a parquet file source)."""
    from feast import FileSource

    source = view.batch_source
    if not isinstance(source, FileSource):
        return None
    path = source_path(repo, source)
    if not path.is_file():
        return None
    columns = [*view.join_keys, source.timestamp_field]
    if source.created_timestamp_column:
        columns.append(source.created_timestamp_column)
    frame = pd.read_parquet(path, columns=list(dict.fromkeys(columns)))
    for column in columns[len(view.join_keys) :]:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def materialize_changes(
    repo: FeatureRepo, until: datetime, previous: dict[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """Bring the online store up to ``until``, late and backfilled rows included.

    Feast's incremental materialization reads only events after each view's watermark, so a row
    that arrives late (or a backfill of an old window) never reaches the online store. Here a
    view's offline rows created since the previous run (its created-timestamp column) whose event
    time is before the watermark are materialized again, from the oldest such event up to the
    watermark, before the incremental step: Feast writes each entity's latest row of a window, so
    the newest value wins. A view without a created-timestamp column cannot tell new rows from
    old: when its source changed, its whole TTL window is materialized again.

    Returns, per stored view, what was written: ``entities`` (keys written), ``late_rows`` (rows
    that arrived behind the watermark), ``oldest_event`` (the oldest event time it touched),
    ``newest_event`` and ``created_through`` (what the next run compares against).
    """
    until = until if until.tzinfo else until.replace(tzinfo=UTC)
    store = repo.store()
    before = (previous or {}).get("online") or {}
    report: dict[str, dict[str, Any]] = {}
    windows: list[tuple[str, datetime, datetime]] = []
    for view in store.list_feature_views():
        frame = _read_source(repo, view)
        if frame is None:
            continue
        source = view.batch_source
        ts, created = source.timestamp_field, source.created_timestamp_column
        watermark = view.most_recent_end_time
        if watermark is not None and watermark.tzinfo is None:
            watermark = watermark.replace(tzinfo=UTC)
        floor = until - view.ttl if view.ttl else None
        start = watermark if watermark is not None else floor
        late = frame.iloc[0:0]
        seen = before.get(view.name) or {}
        if watermark is not None and seen:
            behind = frame[frame[ts] < watermark]
            if created and seen.get("created_through"):
                late = behind[behind[created] > pd.Timestamp(seen["created_through"])]
            elif not created and seen.get("fingerprint") != _fingerprint(repo, view):
                late = behind  # no created column: every row may have changed
        if floor is not None:
            late = late[late[ts] >= floor]  # outside the TTL nothing is served anyway
        if len(late):
            windows.append((view.name, late[ts].min().to_pydatetime(), watermark))
        in_window = frame[(frame[ts] <= until) & (frame[ts] > start if start is not None else True)]
        written = pd.concat([late, in_window])
        report[view.name] = {
            "entities": int(written[view.join_keys].drop_duplicates().shape[0]),
            "late_rows": len(late),
            "oldest_event": _iso(written[ts].min()),
            "newest_event": max(
                (t for t in (_iso(written[ts].max()), seen.get("newest_event")) if t),
                key=pd.Timestamp,
                default=None,
            ),  # the newest event online, this run's or an earlier one's
            "created_through": _iso(frame[created].max()) if created else None,
            "fingerprint": None if created else _fingerprint(repo, view),
        }
    for name, start_at, end_at in windows:
        store.materialize(start_date=start_at, end_date=end_at, feature_views=[name])
    store.materialize_incremental(end_date=until)
    return report


def _fingerprint(repo: FeatureRepo, view: Any) -> str:
    stat = source_path(repo, view.batch_source).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()
