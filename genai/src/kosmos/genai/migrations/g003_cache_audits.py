"""The semantic cache's statistics per namespace and its per-entry bars: the namespace each call
looked up, the namespace (and, for audits, entry and similarity) of each cache event, and each
entry's own minimum similarity.

Revision ID: g003
Revises: g002
"""

import sqlalchemy as sa
from alembic import op

revision = "g003"
down_revision = "g002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_usage") as batch:
        batch.add_column(sa.Column("cache_namespace", sa.Integer(), nullable=True))
    with op.batch_alter_table("cache_events") as batch:
        batch.add_column(sa.Column("namespace_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("entry_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("similarity", sa.Float(), nullable=True))
    with op.batch_alter_table("cache_entries") as batch:
        batch.add_column(sa.Column("min_similarity", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cache_entries") as batch:
        batch.drop_column("min_similarity")
    with op.batch_alter_table("cache_events") as batch:
        batch.drop_column("similarity")
        batch.drop_column("entry_id")
        batch.drop_column("namespace_id")
    with op.batch_alter_table("llm_usage") as batch:
        batch.drop_column("cache_namespace")
