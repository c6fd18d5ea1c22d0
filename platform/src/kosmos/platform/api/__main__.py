"""Run the control plane: ``python -m kosmos.platform.api`` (``kosmos up`` starts it this way)."""

from __future__ import annotations

import sys

import uvicorn

from kosmos.platform.api.app import create_app
from kosmos.platform.logs import configure_logging
from kosmos.platform.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.profile == "production":  # nothing starts half-configured
        from kosmos.platform.doctor import run_checks

        failed = [c for c in run_checks(settings) if not c.ok]
        if failed:
            for c in failed:
                print(f"cannot start: {c.service} ({c.target}): {c.detail}", file=sys.stderr)
            raise SystemExit(1)
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
