"""Runs every project's feature pipelines on its schedule while the platform runs.

``python -m kosmos.features.scheduler`` (started by ``kosmos up``) looks every minute. A
project's interval is its own (``kosmos features schedule``), else
``features.materialize_every_minutes``; a project is due once its last run started that
long ago. 0 means on demand only.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta

from kosmos.features.repo import FeatureRepo, feature_repo
from kosmos.features.runs import last_run, run_pipelines
from kosmos.platform.logs import configure_logging
from kosmos.platform.settings import Settings, get_settings

log = logging.getLogger("kosmos.features.scheduler")


TICK_S = 60.0


def _due(repo: FeatureRepo, default_minutes: int, now: datetime) -> bool:
    minutes = repo.schedule()
    minutes = default_minutes if minutes is None else minutes
    if minutes == 0:
        return False
    previous = last_run(repo)
    if previous is None:
        return True
    return datetime.fromisoformat(previous["started_at"]) + timedelta(minutes=minutes) <= now


def run_once(settings: Settings, *, only_due: bool = False) -> dict[str, str]:
    """One pass over every project with a feature repository; a failure never stops the others.

    ``only_due``: just the projects whose interval has passed since their last run."""
    outcomes = {}
    if not settings.projects_dir.is_dir():
        return outcomes
    now = datetime.now(UTC)
    for folder in sorted(settings.projects_dir.iterdir()):
        repo = feature_repo(settings, folder.name)
        if not repo.exists() or repo.current_version() is None:
            continue
        if only_due and not _due(repo, settings.features.materialize_every_minutes, now):
            continue
        try:
            run = run_pipelines(repo)
            outcomes[folder.name] = run.status
        except Exception as exc:  # recorded in the project's pipeline_status.json
            outcomes[folder.name] = f"failed: {exc}"
    return outcomes


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(TICK_S):
        outcomes = run_once(settings, only_due=True)
        if outcomes:
            log.info("feature pipelines: %s", outcomes)


if __name__ == "__main__":
    main()
