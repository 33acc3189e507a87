"""a beat tick's alert latch: its grouped alerts go once its last batch has reported

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rulewatch.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tick_latches",
        sa.Column("tick", sa.String(length=36), nullable=False),
        sa.Column("party", sa.String(length=36), nullable=False),
        sa.Column("created_at", rulewatch.models.UTCDateTime(), nullable=False),
        sa.Column("reported_at", rulewatch.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("tick", "party"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tick", sa.String(length=36), nullable=True))
        batch_op.create_index("ix_notifications_tick", ["tick"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_tick")
        batch_op.drop_column("tick")
    op.drop_table("tick_latches")
