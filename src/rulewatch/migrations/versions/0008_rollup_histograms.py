"""histogram counts of check duration and schedule lag in daily rollups

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# as in rulewatch.models at this revision (a later change of the models must not change this)
DURATION_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000)
LAG_BOUNDS_MS = (250, 500, 1000, 2000, 5000, 10000, 30000, 60000, 300000)


def _columns() -> list[sa.Column[Any]]:
    """Counts start at 0: rows written before this revision have no histogram counts."""
    names = [f"duration_le_{b}ms" for b in DURATION_BOUNDS_MS] + ["lag_count"]
    columns: list[sa.Column[Any]] = [
        sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in names
    ]
    columns.append(sa.Column("lag_sum_ms", sa.Float(), server_default="0", nullable=False))
    columns += [
        sa.Column(f"lag_le_{b}ms", sa.Integer(), server_default="0", nullable=False)
        for b in LAG_BOUNDS_MS
    ]
    return columns


def upgrade() -> None:
    with op.batch_alter_table("rollups_daily", schema=None) as batch_op:
        for column in _columns():
            batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("rollups_daily", schema=None) as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
