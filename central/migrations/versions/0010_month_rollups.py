"""month rollups of the dashboard's figures, and indexes for today's colours

``supervision_months`` counts the changes to each month's fact rows; ``month_figures`` keeps
each (group, month)'s figures that do not move with the day, valid while their version is the
month's. The colours and late follow-ups, which do move with the day, are counted live over the
rows that can have them: partial indexes on ``opened_at`` find those of a period.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COUNTS = (
    "cases", "completed", "completed_late", "nearby", "no_trip", "returns", "provisional",
    "days_taken_sum", "promised_sum", "legal_completed", "legal_sum", "rated", "rating_1",
    "rating_2", "rating_3", "rating_4", "rating_5", "bad", "follow_up_open", "follow_up_closed",
)  # fmt: skip
"""The steady figures, one column each (as ``central.services.dashboard.STEADY``)."""
PARTIAL = (
    ("ix_case_supervision_supervised_opened_at", "yellow_on IS NOT NULL"),
    ("ix_case_supervision_follow_up_opened_at", "follow_up = 'open'"),
)
"""Partial indexes: the few rows of a period whose colour or follow-up is today's."""


def upgrade() -> None:
    op.create_table(
        "supervision_months",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_supervision_months")),
    )
    op.create_table(
        "month_figures",
        sa.Column("grp", sa.String(length=12), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("township", sa.String(length=12), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.PrimaryKeyConstraint("grp", "month", "township", "key", name=op.f("pk_month_figures")),
    )
    for name, where in PARTIAL:
        op.create_index(
            name, "case_supervision", ["opened_at"],
            sqlite_where=sa.text(where), postgresql_where=sa.text(where),
        )  # fmt: skip


def downgrade() -> None:
    for name, _where in PARTIAL:
        op.drop_index(name, table_name="case_supervision")
    op.drop_table("month_figures")
    op.drop_table("supervision_months")
