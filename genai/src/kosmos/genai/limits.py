"""Per-project request rates and token quotas for the gateway, on fixed windows.

Counters live in a ``Limiter`` chosen by ``gateway.limiter``: ``memory`` (one control-plane
process) or ``redis`` (shared by every replica). A refused call gets 429 and ``Retry-After``.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from kosmos.platform.settings import Settings

LIMITERS = {
    "memory": "kosmos.genai.limits:MemoryLimiter",
    "redis": "kosmos.genai.limits:RedisLimiter",
}


class Limiter(ABC):
    """Counters that expire with their window."""

    @abstractmethod
    def incr(self, key: str, amount: int, ttl_s: int) -> int:
        """Add ``amount`` to ``key`` (created with ``ttl_s`` to live) and return the new total."""

    @abstractmethod
    def get(self, key: str) -> int:
        """The counter's value (0 when absent or expired)."""


class MemoryLimiter(Limiter):
    def __init__(self, settings: Settings) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def incr(self, key: str, amount: int, ttl_s: int) -> int:
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > 10_000:  # drop expired windows now and then
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, expires = self._counts.get(key, (0, now + ttl_s))
            if expires <= now:
                count, expires = 0, now + ttl_s
            self._counts[key] = (count + amount, expires)
            return count + amount

    def get(self, key: str) -> int:
        count, expires = self._counts.get(key, (0, 0.0))
        return count if expires > time.monotonic() else 0


class RedisLimiter(Limiter):
    def __init__(self, settings: Settings) -> None:
        import redis

        if not settings.redis.url:
            raise ValueError("gateway.limiter is redis, but redis.url is not set")
        self.client = redis.Redis.from_url(settings.redis.url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = f"{settings.redis.prefix}gateway:"

    def incr(self, key: str, amount: int, ttl_s: int) -> int:
        pipe = self.client.pipeline()
        pipe.incrby(self.prefix + key, amount)
        pipe.expire(self.prefix + key, ttl_s, nx=True)
        return int(pipe.execute()[0])

    def get(self, key: str) -> int:
        return int(self.client.get(self.prefix + key) or 0)


def limiter(settings: Settings) -> Limiter:
    """The limiter ``gateway.limiter`` names."""
    name = settings.gateway.limiter
    if name not in LIMITERS:
        raise ValueError(f"unknown gateway.limiter {name!r}; valid: {', '.join(sorted(LIMITERS))}")
    module, attr = LIMITERS[name].split(":")
    return getattr(importlib.import_module(module), attr)(settings)


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused, and how many seconds until it may be retried."""

    message: str
    retry_after: int


class ProjectLimits:
    """Requests per minute and tokens per day, per project."""

    def __init__(self, counters: Limiter) -> None:
        self.counters = counters

    def admit(self, project_id: int, requests_per_minute: int, tokens_per_day: int) -> Refusal | None:
        """Count one request; a refusal when the minute's requests or the day's tokens are spent."""
        now = time.time()
        day, day_left = divmod(now, 86400)
        if self.counters.get(f"tok:{project_id}:{int(day)}") >= tokens_per_day:
            return Refusal(
                f"the project's token quota of {tokens_per_day} per day is spent",
                math.ceil(86400 - day_left),
            )
        minute, minute_left = divmod(now, 60)
        count = self.counters.incr(f"req:{project_id}:{int(minute)}", 1, 61)
        if count > requests_per_minute:
            return Refusal(
                f"the project's rate limit of {requests_per_minute} requests per minute is reached",
                max(1, math.ceil(60 - minute_left)),
            )
        return None

    def spend(self, project_id: int, tokens: int) -> None:
        """Charge ``tokens`` to today's quota."""
        if tokens > 0:
            day = int(time.time() // 86400)
            self.counters.incr(f"tok:{project_id}:{day}", tokens, 86400 + 60)
