"""A real control plane on a free port, served by uvicorn in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from kosmos.platform.api.app import create_app
from kosmos.platform.db.engine import Database
from kosmos.platform.settings import Settings


@contextmanager
def serve(settings: Settings, database: Database, port: int, delay_s: float = 0.0) -> Iterator[str]:
    """Serve the control plane on ``port`` (after ``delay_s``) until the block ends."""
    config = uvicorn.Config(
        create_app(settings, database), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)

    def run() -> None:
        time.sleep(delay_s)
        server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        if delay_s == 0:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
