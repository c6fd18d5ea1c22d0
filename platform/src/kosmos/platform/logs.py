"""Logging with request ids, and a filter that keeps secrets out of every log line."""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("kosmos_request_id", default=None)

_SECRETS = re.compile(r"kos_[A-Za-z0-9_\-]{8,}|(?i:bearer)\s+\S+")


def redact_secrets(text: str) -> str:
    """``text`` with API tokens and bearer credentials masked."""
    return _SECRETS.sub("[REDACTED]", text)


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` to each record and masks secrets in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        message = record.getMessage()
        cleaned = redact_secrets(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Route Kosmos and uvicorn logs through one handler with request ids."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
