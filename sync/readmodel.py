"""The SQL read model of cases, shared by the township and the district (and later the kiosk).

CouchDB is the replicated log; these tables are its projection (``sync.projection`` keeps
them): the raw documents as the source holds them, one row per case with its folded state and
the columns inboxes, search and dashboards filter on, the follower's checkpoints and the
documents or cases it could not project. Everything here can be rebuilt from the source.

SLA colour. A case's colour depends on ``today``, so it is not stored. Instead each supervised
case (accepted or suspended, with a due date) stores ``yellow_on``, the first day it is no
longer green, beside ``due_on``; the colour on any day is then plain date comparisons that SQL
evaluates and indexes (:func:`colour_expr`, :func:`colour_where`, :func:`colour_counts`),
exactly what ``core.sla.colour_of`` answers for that day. Dates that move with time itself
(deemed acceptance, a running suspension) are refreshed by ``refold_all`` once a day.

The metadata is separate from the district's models but uses the same naming convention, so
Alembic compares both cleanly; the district's migrations include these tables, the township's
own migrations will too.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    and_,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from core.calendar import WorkCalendar
from core.cases import case_id_from_number
from core.errors import InvalidInput
from core.sla import Colour, SlaThresholds

__all__ = [
    "NAMING",
    "ReadModelBase",
    "metadata",
    "CaseDoc",
    "CaseEventDoc",
    "CaseRow",
    "ProjectionCheckpoint",
    "ProjectionError",
    "yellow_from",
    "colour_at",
    "colour_expr",
    "colour_where",
    "colour_counts",
    "digits",
    "search_clause",
    "contains_clause",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names; the same as ``central.db.models.NAMING`` (a test keeps them equal)."""

CASE_ID_LENGTH = 80
EVENT_ID_LENGTH = 160
REV_LENGTH = 100
ERROR_ID_LENGTH = 255


class ReadModelBase(DeclarativeBase):
    """Declarative base of the read model, on its own metadata."""

    metadata = MetaData(naming_convention=NAMING)


metadata = ReadModelBase.metadata
"""The read model's tables, for Alembic's ``target_metadata``."""


class CaseDoc(ReadModelBase):
    """A ``case`` document as the source holds it (winning revision); deleted ones are removed."""

    __tablename__ = "case_docs"
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LENGTH), primary_key=True)
    rev: Mapped[str] = mapped_column(String(REV_LENGTH))
    seq: Mapped[str] = mapped_column(Text)
    """The source's update sequence of this revision, JSON-encoded (opaque)."""
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)


class CaseEventDoc(ReadModelBase):
    """A ``case_event`` document (winning revision), filed under the case its id names."""

    __tablename__ = "case_event_docs"
    event_id: Mapped[str] = mapped_column(String(EVENT_ID_LENGTH), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LENGTH), index=True)
    rev: Mapped[str] = mapped_column(String(REV_LENGTH))
    seq: Mapped[str] = mapped_column(Text)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)


class CaseRow(ReadModelBase):
    """One case as its documents fold today: what inboxes, search and dashboards read."""

    __tablename__ = "cases"
    __table_args__ = (
        # Inboxes list a unit's newest cases: read in order from these, never sorted whole.
        Index("ix_cases_township_opened_at", "township", "opened_at"),
        Index("ix_cases_handling_unit_opened_at", "handling_unit", "opened_at"),
    )
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LENGTH), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(40), unique=True, index=True)
    village: Mapped[str | None] = mapped_column(String(12), index=True)
    """None for a case opened at a township or district counter."""
    township: Mapped[str] = mapped_column(String(12), index=True)
    handling_unit: Mapped[str] = mapped_column(String(12), index=True)
    origin_unit: Mapped[str] = mapped_column(String(12))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    item_code: Mapped[str] = mapped_column(String(40), index=True)
    item_name: Mapped[str] = mapped_column(String(200))
    catalogue_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str | None] = mapped_column(String(12), index=True)
    """The item's service kind (party, government, business, life) if the projection knew it."""
    case_type: Mapped[str] = mapped_column(String(12))
    handling_level: Mapped[str] = mapped_column(String(10))
    mode: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    applicant_kind: Mapped[str] = mapped_column(String(16))
    applicant_name: Mapped[str] = mapped_column(String(200), index=True)
    applicant_id_masked: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(String(40), index=True)
    """The applicant's (or organisation contact's) phone, digits only, for search."""
    representative_name: Mapped[str] = mapped_column(String(200))
    representative_phone: Mapped[str] = mapped_column(String(40), index=True)
    elderly: Mapped[bool] = mapped_column(Boolean)
    disabled: Mapped[bool] = mapped_column(Boolean)
    bedridden: Mapped[bool] = mapped_column(Boolean)
    assignee: Mapped[str | None] = mapped_column(String(200), index=True)
    assignee_name: Mapped[str] = mapped_column(String(200))
    submitted_on: Mapped[date | None] = mapped_column(Date)
    received_on: Mapped[date | None] = mapped_column(Date)
    accepted_on: Mapped[date | None] = mapped_column(Date)
    accepted_deemed: Mapped[bool] = mapped_column(Boolean)
    due_on: Mapped[date | None] = mapped_column(Date, index=True)
    due_provisional: Mapped[bool] = mapped_column(Boolean)
    expected_due_on: Mapped[date | None] = mapped_column(Date)
    expected_due_provisional: Mapped[bool] = mapped_column(Boolean)
    yellow_on: Mapped[date | None] = mapped_column(Date, index=True)
    """First day the case is not green; None when it is not supervised (see the module doc)."""
    completed_on: Mapped[date | None] = mapped_column(Date)
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    returns: Mapped[int] = mapped_column(Integer)
    conflicts: Mapped[int] = mapped_column(Integer)
    """Open conflicting or unreadable events, for staff to resolve."""
    follow_up_open: Mapped[bool] = mapped_column(Boolean)
    last_hlc: Mapped[str] = mapped_column(String(80))
    last_seq: Mapped[str] = mapped_column(Text)
    """The source sequence of the last change that touched the case, JSON-encoded (opaque)."""
    folded_on: Mapped[date] = mapped_column(Date)
    """The ``today`` the state was folded for."""
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The full ``core.fold.CaseState`` as JSON."""


class ProjectionCheckpoint(ReadModelBase):
    """How far the projection of one source has read its changes feed."""

    __tablename__ = "projection_checkpoints"
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[str] = mapped_column(Text)
    """The last sequence projected, JSON-encoded and sent back verbatim."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProjectionError(ReadModelBase):
    """A document or case the projection could not project (logged, kept until it projects)."""

    __tablename__ = "projection_errors"
    doc_id: Mapped[str] = mapped_column(String(ERROR_ID_LENGTH), primary_key=True)
    """The document's id, or the case id when the case's fold failed."""
    case_id: Mapped[str | None] = mapped_column(String(CASE_ID_LENGTH), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    """``document`` (not a usable case or event document) or ``fold`` (the case's fold failed)."""
    error: Mapped[str] = mapped_column(Text)
    seq: Mapped[str] = mapped_column(Text)


# --- SLA colour -------------------------------------------------------------------------------

_ONE_DAY = timedelta(days=1)


def yellow_from(
    accepted_on: date,
    due_on: date,
    calendar: WorkCalendar,
    thresholds: SlaThresholds | None = None,
) -> date:
    """The first day on or after ``accepted_on`` that ``core.sla.colour_of`` calls not green.

    Colours only ever move green → yellow → red as days pass, so this day (with ``due_on``)
    gives the colour of every later day. The walk keeps the identity
    ``between(a, d) + between(d, due) == between(a, due)`` to count each day once.
    """
    t = SlaThresholds() if thresholds is None else thresholds
    if due_on <= accepted_on:
        return accepted_on
    limit = calendar.working_days_between(accepted_on, due_on)
    elapsed, day = 0, accepted_on
    while day < due_on:
        if day > accepted_on:
            elapsed += calendar.is_workday(day)
        remaining = limit - elapsed
        if remaining <= t.yellow_remaining_days:
            return day
        if limit > 0 and elapsed / limit >= t.yellow_elapsed_ratio:
            return day
        day += _ONE_DAY
    return due_on


def colour_at(yellow_on: date | None, due_on: date | None, today: date) -> Colour | None:
    """A case's colour on ``today`` from its stored dates; None if it is not supervised."""
    if yellow_on is None or due_on is None:
        return None
    if today > due_on:
        return Colour.RED
    if today >= yellow_on:
        return Colour.YELLOW
    return Colour.GREEN


def colour_expr(
    today: date, yellow_on: Any = CaseRow.yellow_on, due_on: Any = CaseRow.due_on
) -> ColumnElement[Any]:
    """SQL for a case's colour on ``today`` (``'green'``/``'yellow'``/``'red'`` or NULL), from
    the ``cases`` table's dates or the same dates in another table."""
    return case(
        (or_(yellow_on.is_(None), due_on.is_(None)), None),
        (due_on < today, Colour.RED.value),
        (yellow_on <= today, Colour.YELLOW.value),
        else_=Colour.GREEN.value,
    )


def colour_where(colour: Colour, today: date) -> ColumnElement[bool]:
    """A WHERE clause for the cases of ``colour`` on ``today``: ranges the indexes serve."""
    if colour is Colour.RED:
        return and_(CaseRow.yellow_on.is_not(None), CaseRow.due_on < today)
    if colour is Colour.YELLOW:
        return and_(CaseRow.yellow_on <= today, CaseRow.due_on >= today)
    return CaseRow.yellow_on > today


def colour_counts(session: Session, today: date, *where: ColumnElement[bool]) -> dict[Colour, int]:
    """How many supervised cases (matching ``where``) are of each colour on ``today``."""
    colour = colour_expr(today)
    query = (
        select(colour, func.count()).where(CaseRow.yellow_on.is_not(None), *where).group_by(colour)
    )
    counts = dict.fromkeys(Colour, 0)
    for value, count in session.execute(query):
        if value is not None:
            counts[Colour(value)] = count
    return counts


# --- search -----------------------------------------------------------------------------------


def digits(text: str) -> str:
    """Only the digits of a phone number, as the ``phone`` columns hold it."""
    return "".join(c for c in text if c.isdigit())


def _like_pattern(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_clause(text: str) -> ColumnElement[bool]:
    """A WHERE clause for the inbox search box: a case number, a phone number or a name."""
    text = text.strip()
    try:
        return CaseRow.case_id == case_id_from_number(text)
    except InvalidInput:
        pass
    compact = text.replace(" ", "").replace("-", "").removeprefix("+")
    if len(compact) >= 6 and compact.isdigit():
        return or_(CaseRow.phone == compact, CaseRow.representative_phone == compact)
    pattern = _like_pattern(text) + "%"
    return or_(
        CaseRow.applicant_name.like(pattern, escape="\\"),
        CaseRow.representative_name.like(pattern, escape="\\"),
    )


def contains_clause(text: str) -> ColumnElement[bool]:
    """A WHERE clause for a looser search (the kiosk's list): the case number or a name
    containing ``text``, or, when it is 3 or more digits, a phone number containing them."""
    text = text.strip()
    pattern = f"%{_like_pattern(text)}%"
    clauses = [
        CaseRow.case_number.like(pattern, escape="\\"),
        CaseRow.applicant_name.like(pattern, escape="\\"),
        CaseRow.representative_name.like(pattern, escape="\\"),
    ]
    compact = text.replace(" ", "").replace("-", "").removeprefix("+")
    if len(compact) >= 3 and compact.isdigit():
        clauses += [
            CaseRow.phone.like(f"%{compact}%"),
            CaseRow.representative_phone.like(f"%{compact}%"),
        ]
    return or_(*clauses)
