"""Decision records: every data-plane request, traced to what made its answer.

Revision ID: d002
Revises: d001
"""

import sqlalchemy as sa
from alembic import op

from kosmos.platform.db.models import UTCDateTime

revision = "d002"
down_revision = "d001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_decisions_project_id_projects", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index("ix_decisions_request", "decisions", ["project_id", "request_id"])
    op.create_index("ix_decisions_window", "decisions", ["project_id", "deployment", "at"])
    op.create_index("ix_decisions_expires_at", "decisions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_expires_at", "decisions")
    op.drop_index("ix_decisions_window", "decisions")
    op.drop_index("ix_decisions_request", "decisions")
    op.drop_table("decisions")
