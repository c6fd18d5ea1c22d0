"""Runs every project's feature pipelines on a schedule while the platform runs.

``python -m kosmos.features.scheduler`` (started by ``kosmos up``); the interval
is ``features.materialize_every_minutes``.
"""

from __future__ import annotations

import logging
import signal
import threading

from kosmos.features.repo import feature_repo
from kosmos.features.runs import run_pipelines
from kosmos.platform.logs import configure_logging
from kosmos.platform.settings import Settings, get_settings

log = logging.getLogger("kosmos.features.scheduler")


def run_once(settings: Settings) -> dict[str, str]:
    """One pass over every project with a feature repository; a failure never stops the others."""
    outcomes = {}
    if not settings.projects_dir.is_dir():
        return outcomes
    for folder in sorted(settings.projects_dir.iterdir()):
        repo = feature_repo(settings, folder.name)
        if not repo.exists():
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
    interval = settings.features.materialize_every_minutes * 60
    while not stop.wait(interval):
        log.info("feature pipelines: %s", run_once(settings))


if __name__ == "__main__":
    main()
