"""The deployments table, on the platform's metadata database (migrations in ./migrations)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kosmos.platform.db.models import Base, UTCDateTime, utcnow


class DeploymentRecord(Base):
    """Desired state (spec, versions, traffic) and observed state (status, reason) of one deployment."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    stable_version: Mapped[int] = mapped_column(Integer)
    candidate_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    strategy: Mapped[str] = mapped_column(String(32), default="direct")
    traffic: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Percent of requests per model version, e.g. {"3": 95, "4": 5}; shadow and A/B in `details`."""
    rollout_step: Mapped[int] = mapped_column(Integer, default=0)
    step_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    applied_generation: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DecisionRow(Base):
    """One decision record: what one data-plane request was answered with, and everything that made it
    (``kosmos.deployment.decisions`` writes and reads them; ``record`` is its JSON document)."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_request", "project_id", "request_id"),
        Index("ix_decisions_window", "project_id", "deployment", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64))
    part: Mapped[int] = mapped_column(Integer, default=0)
    """A batch request's chunk (0 for a single request)."""
    deployment: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    """``model`` or ``llm``."""
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    """ok, invalid (the caller's input) or error (the model failed)."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
