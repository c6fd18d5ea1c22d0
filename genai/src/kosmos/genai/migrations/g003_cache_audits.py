"""The semantic cache's statistics per namespace: the namespace each call looked up, and the
namespace of each cache event (flags, audits, invalidations).

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


def downgrade() -> None:
    with op.batch_alter_table("cache_events") as batch:
        batch.drop_column("namespace_id")
    with op.batch_alter_table("llm_usage") as batch:
        batch.drop_column("cache_namespace")
