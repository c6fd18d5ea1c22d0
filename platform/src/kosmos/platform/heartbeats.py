"""Background services say they are alive, and whether their last pass worked.

A service that loops (the deployment reconciler) calls ``beat`` after every pass; ``problems``
is what ``/readyz``, `kosmos doctor` and `kosmos up` report: a service whose last pass failed
(with its reason: "Ray cluster at ... is unreachable: ...") or that stopped reporting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import ServiceHeartbeat

log = logging.getLogger(__name__)
STALE_AFTER_PASSES = 6
"""A service silent for this many of its intervals (and at least a minute) counts as stopped."""


def beat(database: Database, name: str, *, ok: bool, detail: str, every_s: float) -> None:
    """Record ``name``'s last pass; never raises (a service must not die for its heartbeat)."""
    try:
        with database.transaction() as session:
            row = session.get(ServiceHeartbeat, name) or ServiceHeartbeat(name=name)
            row.at, row.ok, row.detail = datetime.now(UTC), ok, detail[:512]
            row.every_s = max(1, round(every_s))
            session.add(row)
    except Exception as exc:  # the database being down is reported by its own check
        log.warning("could not record %s's heartbeat: %s", name, exc)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one service, and how long ago it last reported."""

    cause: str
    age_s: float
    stale: bool = False
    """It stopped reporting (stopped, or stuck) rather than reported a failure."""

    def __str__(self) -> str:
        return f"{self.cause} (reported {self.age_s:.0f}s ago)"


def states(database: Database, now: datetime | None = None) -> dict[str, Problem | None]:
    """Every service that ever reported: ``None`` when fine, else what is wrong."""
    now = now or datetime.now(UTC)
    with database.transaction() as session:
        rows = list(session.scalars(select(ServiceHeartbeat).order_by(ServiceHeartbeat.name)))
    found: dict[str, Problem | None] = {}
    for row in rows:
        age = (now - row.at).total_seconds()
        if not row.ok:
            found[row.name] = Problem(row.detail, age)
        elif age > max(60, STALE_AFTER_PASSES * row.every_s):
            found[row.name] = Problem(f"stopped reporting (its last pass: {row.detail})", age, stale=True)
        else:
            found[row.name] = None
    return found


def problems(database: Database, now: datetime | None = None) -> dict[str, Problem]:
    """Each service whose last pass failed or that went silent, with what is wrong."""
    return {name: p for name, p in states(database, now).items() if p is not None}
