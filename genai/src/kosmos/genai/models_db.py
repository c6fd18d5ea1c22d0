"""LLM usage (metering), gateway policies and the semantic cache, in the metadata database.

Migrations in ./migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from kosmos.platform.db.models import Base, UTCDateTime, utcnow


class LLMUsage(Base):
    """One OpenAI-API call on an LLM deployment: tokens in and out, latency, time to first token."""

    __tablename__ = "llm_usage"
    __table_args__ = (
        Index("ix_llm_usage_project_deployment_at", "project_id", "deployment", "at"),
        Index("ix_llm_usage_request_id", "request_id"),
    )

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
    cache: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The semantic cache's outcome: hit, miss, skip, refresh, bypass or error (None: not consulted)."""
    cache_namespace: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The cache namespace looked up (no foreign key: usage outlives a dropped namespace)."""
    prompt: Mapped[str | None] = mapped_column(String(300), nullable=True)
    """The registered prompt used, as ``name/version``."""
    redacted: Mapped[int] = mapped_column(Integer, default=0)
    """How many PII values the gateway replaced in the request (never the values)."""
    fallback: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The deployment that answered when the first choice could not."""
    tokens_saved: Mapped[int] = mapped_column(Integer, default=0)
    """On a cache hit: the tokens the cached answer cost when it was made."""
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """What the application reported afterwards: success or failure (prompt A/B tests count these)."""


class GatewayPolicy(Base):
    """A project's gateway settings: limits, routes by model name and cache behaviour."""

    __tablename__ = "gateway_policies"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CacheNamespace(Base):
    """One hard partition of the semantic cache: a project, model (and its version), prompt version
    and system prompt. ``slot`` is the same partition across versions, so a version move finds
    (and drops) the entries made for the old one."""

    __tablename__ = "cache_namespaces"
    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_cache_namespaces_project_slot", "project_id", "slot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str | None] = mapped_column(String(300), nullable=True)
    """The prompt as referenced (``name@alias``), when one was used."""
    prompt_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CacheEntry(Base):
    """A cached answer: the redacted question, its embedding and the model's answer."""

    __tablename__ = "cache_entries"
    __table_args__ = (Index("ix_cache_entries_namespace_last_used", "namespace_id", "last_used_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("cache_namespaces.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    checksum: Mapped[str] = mapped_column(String(64))
    """sha256 of the vector and the answer: an entry that does not match it is never served."""
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    min_similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    """This entry's own bar, above the namespace's threshold: raised past the similarity of a
    question whose audit disagreed, so that question (and any farther one) never gets it again."""


class CacheEvent(Base):
    """Counted cache events that outlive their entries: flags (wrong answers) and invalidations."""

    __tablename__ = "cache_events"
    __table_args__ = (Index("ix_cache_events_project_at", "project_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    """flagged, invalidated, evicted, or audit_agreed / audit_disagreed (a served hit the model
    answered again in the background: did the answers agree)."""
    entries: Mapped[int] = mapped_column(Integer, default=1)
    namespace_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The namespace the event touched (None: several, or events recorded before it was kept)."""
    entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    """On an audit: the entry audited and the similarity of the question that hit it."""
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
