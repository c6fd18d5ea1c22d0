"""Deployments: desired and observed state of model deployments.

Revision ID: d001
Revises:
Depends on: 0001 (projects)
"""

import sqlalchemy as sa
from alembic import op

from kosmos.platform.db.models import UTCDateTime

revision = "d001"
down_revision = None
branch_labels = ("deployment",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("stable_version", sa.Integer(), nullable=False),
        sa.Column("candidate_version", sa.Integer(), nullable=True),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("traffic", sa.JSON(), nullable=False),
        sa.Column("rollout_step", sa.Integer(), nullable=False),
        sa.Column("step_started_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("applied_generation", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_deployments_project_id_projects", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.UniqueConstraint("project_id", "name", name="uq_deployments_project_id"),
    )
    op.create_index("ix_deployments_project_id", "deployments", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_deployments_project_id", "deployments")
    op.drop_table("deployments")
