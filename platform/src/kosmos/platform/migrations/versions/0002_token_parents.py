"""Tokens remember the token that minted them, so revoking a token revokes its children.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:  # SQLite alters tables by copying them
        batch.add_column(sa.Column("parent_id", sa.Integer))
        batch.create_foreign_key(
            "fk_api_tokens_parent_id_api_tokens", "api_tokens", ["parent_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_api_tokens_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_parent_id")
        batch.drop_constraint("fk_api_tokens_parent_id_api_tokens", type_="foreignkey")
        batch.drop_column("parent_id")
