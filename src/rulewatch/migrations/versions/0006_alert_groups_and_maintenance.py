"""alert groups and maintenance windows

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import rulewatch.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("group_key", sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))
        batch_op.create_index("ix_notifications_group", ["group_key", "status"], unique=False)
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("in_maintenance", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    for table in ("rollups_hourly", "rollups_daily"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("maintenance", sa.Integer(), server_default="0", nullable=False)
            )
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("tag", sa.String(length=64), nullable=True),
        sa.Column("starts_at", rulewatch.models.UTCDateTime(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(length=120), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("ends_at", rulewatch.models.UTCDateTime(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", rulewatch.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.create_index("ix_maintenance_windows_rule_id", ["rule_id"], unique=False)


def downgrade() -> None:
    op.drop_table("maintenance_windows")
    for table in ("rollups_hourly", "rollups_daily"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("maintenance")
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_column("in_maintenance")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_group")
        batch_op.drop_column("details")
        batch_op.drop_column("group_key")
        batch_op.drop_column("claim_token")
