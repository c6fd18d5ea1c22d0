"""Background services' heartbeats: a reconciler that cannot reach Ray is reported, not silent.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from kosmos.platform.db.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_heartbeats",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("detail", sa.String(512), nullable=False),
        sa.Column("every_s", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_heartbeats")
