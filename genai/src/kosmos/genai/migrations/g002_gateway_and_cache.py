"""The gateway: per-project policies, the semantic cache (namespaces, entries, events) and
the gateway's columns on llm_usage (cache outcome, prompt, redactions, fallback).

Revision ID: g002
Revises: g001
"""

import sqlalchemy as sa
from alembic import op

from kosmos.platform.db.models import UTCDateTime

revision = "g002"
down_revision = "g001"
branch_labels = None
depends_on = None


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"], ["projects.id"], name=f"fk_{table}_project_id_projects", ondelete="CASCADE"
    )


def upgrade() -> None:
    with op.batch_alter_table("llm_usage") as batch:
        batch.add_column(sa.Column("cache", sa.String(16), nullable=True))
        batch.add_column(sa.Column("prompt", sa.String(300), nullable=True))
        batch.add_column(sa.Column("redacted", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("fallback", sa.String(128), nullable=True))
        batch.add_column(sa.Column("tokens_saved", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("outcome", sa.String(16), nullable=True))
    with op.batch_alter_table("llm_usage") as batch:
        batch.alter_column("redacted", server_default=None)
        batch.alter_column("tokens_saved", server_default=None)
    op.create_index("ix_llm_usage_request_id", "llm_usage", ["request_id"])
    op.create_table(
        "gateway_policies",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        _project_fk("gateway_policies"),
        sa.PrimaryKeyConstraint("project_id", name="pk_gateway_policies"),
    )
    op.create_table(
        "cache_namespaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("slot", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("prompt", sa.String(300), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _project_fk("cache_namespaces"),
        sa.PrimaryKeyConstraint("id", name="pk_cache_namespaces"),
        sa.UniqueConstraint("key", name="uq_cache_namespaces_key"),
    )
    op.create_index("ix_cache_namespaces_project_slot", "cache_namespaces", ["project_id", "slot"])
    op.create_table(
        "cache_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["cache_namespaces.id"],
            name="fk_cache_entries_namespace_id_cache_namespaces",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cache_entries"),
    )
    op.create_index("ix_cache_entries_namespace_last_used", "cache_entries", ["namespace_id", "last_used_at"])
    op.create_table(
        "cache_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        _project_fk("cache_events"),
        sa.PrimaryKeyConstraint("id", name="pk_cache_events"),
    )
    op.create_index("ix_cache_events_project_at", "cache_events", ["project_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_cache_events_project_at", "cache_events")
    op.drop_table("cache_events")
    op.drop_index("ix_cache_entries_namespace_last_used", "cache_entries")
    op.drop_table("cache_entries")
    op.drop_index("ix_cache_namespaces_project_slot", "cache_namespaces")
    op.drop_table("cache_namespaces")
    op.drop_table("gateway_policies")
    op.drop_index("ix_llm_usage_request_id", "llm_usage")
    with op.batch_alter_table("llm_usage") as batch:
        for column in ("outcome", "tokens_saved", "fallback", "redacted", "prompt", "cache"):
            batch.drop_column(column)
