"""monitor gaps: the times a rule went unverified because the monitor could not run it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rulewatch.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("started_at", rulewatch.models.UTCDateTime(), nullable=False),
        sa.Column("ended_at", rulewatch.models.UTCDateTime(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_monitor_gaps_rule_ended", "monitor_gaps", ["rule_id", "ended_at"])
    op.create_index("ix_monitor_gaps_ended", "monitor_gaps", ["ended_at"])


def downgrade() -> None:
    # the table takes its indexes with it (MySQL refuses to drop the one its foreign key uses)
    op.drop_table("monitor_gaps")
