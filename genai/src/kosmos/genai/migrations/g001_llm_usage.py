"""LLM usage: tokens, latency and time to first token per OpenAI-API call.

Revision ID: g001
Revises:
Depends on: 0001 (projects)
"""

import sqlalchemy as sa
from alembic import op

from kosmos.platform.db.models import UTCDateTime

revision = "g001"
down_revision = None
branch_labels = ("genai",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "llm_usage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_llm_usage_project_id_projects", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_llm_usage"),
    )
    op.create_index("ix_llm_usage_project_deployment_at", "llm_usage", ["project_id", "deployment", "at"])


def downgrade() -> None:
    op.drop_index("ix_llm_usage_project_deployment_at", "llm_usage")
    op.drop_table("llm_usage")
