"""The LLM usage table (metering), on the platform's metadata database (migrations in ./migrations)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kosmos.platform.db.models import Base, UTCDateTime, utcnow


class LLMUsage(Base):
    """One OpenAI-API call on an LLM deployment: tokens in and out, latency, time to first token."""

    __tablename__ = "llm_usage"
    __table_args__ = (Index("ix_llm_usage_project_deployment_at", "project_id", "deployment", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    deployment: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    endpoint: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    """ok, error (the model failed) or cancelled (the client went away mid-stream)."""
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
