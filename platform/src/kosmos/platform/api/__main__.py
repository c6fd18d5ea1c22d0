"""Run the control plane: ``python -m kosmos.platform.api`` (``kosmos up`` starts it this way)."""

from __future__ import annotations

import uvicorn

from kosmos.platform.api.app import create_app
from kosmos.platform.logs import configure_logging
from kosmos.platform.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
