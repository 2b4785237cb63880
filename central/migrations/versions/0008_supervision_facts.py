"""supervision facts: every dimension and measure the dashboard reads, on case_supervision

The dashboard's figures used to join ``cases`` (wide: the folded state as JSON) with
``case_supervision``; they now scan ``case_supervision`` alone, which carries the case's period,
place, kind, mode, level, staff, service, department, legal limit and colour dates. The table is
derived: it is emptied and the `district` projection's checkpoint dropped, so the follower
replays the database once and fills it (projection is idempotent).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 20:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = (  # name, type, nullable (the table is emptied first: no defaults needed)
    ("opened_at", sa.DateTime(timezone=True), False),
    ("village", sa.String(length=12), True),
    ("kind", sa.String(length=12), True),
    ("mode", sa.String(length=16), False),
    ("handling_level", sa.String(length=10), False),
    ("status", sa.String(length=16), False),
    ("assignee", sa.String(length=200), True),
    ("assignee_name", sa.String(length=200), False),
    ("item_name", sa.String(length=200), False),
    ("department", sa.String(length=100), False),
    ("legal_days", sa.Integer(), True),
    ("returns", sa.Integer(), False),
    ("due_on", sa.Date(), True),
    ("yellow_on", sa.Date(), True),
    ("due_provisional", sa.Boolean(), False),
    ("on_time", sa.Boolean(), True),
)


def upgrade() -> None:
    op.execute("DELETE FROM case_supervision")
    with op.batch_alter_table("case_supervision", schema=None) as batch_op:
        for name, type_, nullable in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=nullable))
        batch_op.create_index(
            batch_op.f("ix_case_supervision_opened_at"), ["opened_at"], unique=False
        )
    op.execute("DELETE FROM projection_checkpoints WHERE source = 'district'")


def downgrade() -> None:
    with op.batch_alter_table("case_supervision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_supervision_opened_at"))
        for name, _type, _nullable in reversed(COLUMNS):
            batch_op.drop_column(name)
