"""case read model: the projection of the district database's cases (sync.readmodel)

Raw case and event documents, one folded row per case with the inbox's filter and search
columns, the follower's checkpoints and what it could not project. Rebuildable from CouchDB.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 16:23:29.474709
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_docs",
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("rev", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Text(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_docs")),
    )
    op.create_table(
        "case_event_docs",
        sa.Column("event_id", sa.String(length=160), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("rev", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Text(), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_case_event_docs")),
    )
    with op.batch_alter_table("case_event_docs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_event_docs_case_id"), ["case_id"], unique=False)

    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(length=80), nullable=False),
        sa.Column("case_number", sa.String(length=40), nullable=False),
        sa.Column("village", sa.String(length=12), nullable=True),
        sa.Column("township", sa.String(length=12), nullable=False),
        sa.Column("handling_unit", sa.String(length=12), nullable=False),
        sa.Column("origin_unit", sa.String(length=12), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("item_code", sa.String(length=40), nullable=False),
        sa.Column("item_name", sa.String(length=200), nullable=False),
        sa.Column("catalogue_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=True),
        sa.Column("case_type", sa.String(length=12), nullable=False),
        sa.Column("handling_level", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("applicant_kind", sa.String(length=16), nullable=False),
        sa.Column("applicant_name", sa.String(length=200), nullable=False),
        sa.Column("applicant_id_masked", sa.String(length=40), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("representative_name", sa.String(length=200), nullable=False),
        sa.Column("representative_phone", sa.String(length=40), nullable=False),
        sa.Column("elderly", sa.Boolean(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("bedridden", sa.Boolean(), nullable=False),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("assignee_name", sa.String(length=200), nullable=False),
        sa.Column("submitted_on", sa.Date(), nullable=True),
        sa.Column("received_on", sa.Date(), nullable=True),
        sa.Column("accepted_on", sa.Date(), nullable=True),
        sa.Column("accepted_deemed", sa.Boolean(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("due_provisional", sa.Boolean(), nullable=False),
        sa.Column("expected_due_on", sa.Date(), nullable=True),
        sa.Column("expected_due_provisional", sa.Boolean(), nullable=False),
        sa.Column("yellow_on", sa.Date(), nullable=True),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("follow_up_open", sa.Boolean(), nullable=False),
        sa.Column("last_hlc", sa.String(length=80), nullable=False),
        sa.Column("last_seq", sa.Text(), nullable=False),
        sa.Column("folded_on", sa.Date(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cases_applicant_name"), ["applicant_name"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_cases_assignee"), ["assignee"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_case_number"), ["case_number"], unique=True)
        batch_op.create_index(batch_op.f("ix_cases_due_on"), ["due_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_handling_unit"), ["handling_unit"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_item_code"), ["item_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_mode"), ["mode"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_opened_at"), ["opened_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_phone"), ["phone"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_cases_representative_phone"), ["representative_phone"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_cases_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_township"), ["township"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_village"), ["village"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_yellow_on"), ["yellow_on"], unique=False)

    op.create_table(
        "projection_checkpoints",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_projection_checkpoints")),
    )
    op.create_table(
        "projection_errors",
        sa.Column("doc_id", sa.String(length=255), nullable=False),
        sa.Column("case_id", sa.String(length=80), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("seq", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("doc_id", name=op.f("pk_projection_errors")),
    )
    with op.batch_alter_table("projection_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projection_errors_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("projection_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projection_errors_case_id"))

    op.drop_table("projection_errors")
    op.drop_table("projection_checkpoints")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_yellow_on"))
        batch_op.drop_index(batch_op.f("ix_cases_village"))
        batch_op.drop_index(batch_op.f("ix_cases_township"))
        batch_op.drop_index(batch_op.f("ix_cases_status"))
        batch_op.drop_index(batch_op.f("ix_cases_representative_phone"))
        batch_op.drop_index(batch_op.f("ix_cases_phone"))
        batch_op.drop_index(batch_op.f("ix_cases_opened_at"))
        batch_op.drop_index(batch_op.f("ix_cases_mode"))
        batch_op.drop_index(batch_op.f("ix_cases_kind"))
        batch_op.drop_index(batch_op.f("ix_cases_item_code"))
        batch_op.drop_index(batch_op.f("ix_cases_handling_unit"))
        batch_op.drop_index(batch_op.f("ix_cases_due_on"))
        batch_op.drop_index(batch_op.f("ix_cases_case_number"))
        batch_op.drop_index(batch_op.f("ix_cases_assignee"))
        batch_op.drop_index(batch_op.f("ix_cases_applicant_name"))

    op.drop_table("cases")
    with op.batch_alter_table("case_event_docs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_event_docs_case_id"))

    op.drop_table("case_event_docs")
    op.drop_table("case_docs")
