"""The district's relational truth: hierarchy, accounts, kiosks, catalogue, settings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Unit",
    "Account",
    "KioskRegistration",
    "Item",
    "MaterialTemplate",
    "CatalogueVersion",
    "CalendarException",
    "AnnouncedYear",
    "Setting",
    "OutboxDoc",
    "TownshipNode",
    "NodeCheck",
    "Booking",
    "Notification",
    "BookingRating",
    "FleetEnrolment",
    "FleetStatus",
    "CaseSupervision",
    "SupervisionMonth",
    "MonthFigures",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (so migrations and models compare equal)."""

    metadata = MetaData(naming_convention=NAMING)


class Unit(Base):
    """A division of the district: the district itself, a township/street or a village/community."""

    __tablename__ = "units"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(10), index=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("units.code"), index=True)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Account(Base):
    """A person who logs in: district administrator, township staff or village agent."""

    __tablename__ = "accounts"
    username: Mapped[str] = mapped_column(String(40), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(60))
    role: Mapped[str] = mapped_column(String(20), index=True)
    unit_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20), default="")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class KioskRegistration(Base):
    """A village kiosk's registration: a one-time enrolment code (kept hashed) and its fate."""

    __tablename__ = "kiosk_registrations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    village_code: Mapped[str] = mapped_column(ForeignKey("units.code"), index=True)
    label: Mapped[str] = mapped_column(String(60), default="")
    code_hash: Mapped[str] = mapped_column(String(200))
    issued_by: Mapped[str] = mapped_column(String(40))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str] = mapped_column(String(200), default="")


class Item(Base):
    """The working copy of a catalogue item; ``body`` is the core CatalogueItem as JSON."""

    __tablename__ = "catalogue_items"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(12), index=True)
    handling_level: Mapped[str] = mapped_column(String(10), index=True)
    modes: Mapped[str] = mapped_column(String(100))
    initials: Mapped[str] = mapped_column(String(100), default="")
    retired: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(40), default="")


class MaterialTemplate(Base):
    """A blank form or filled sample for one material of an item (published as an attachment)."""

    __tablename__ = "material_templates"
    __table_args__ = (UniqueConstraint("item_code", "material_key", "filename"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_code: Mapped[str] = mapped_column(ForeignKey("catalogue_items.code"), index=True)
    material_key: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(120))
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CatalogueVersion(Base):
    """A published, frozen catalogue version; recorded only once its manifest is in CouchDB."""

    __tablename__ = "catalogue_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    fingerprint: Mapped[str] = mapped_column(String(64))
    item_count: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str] = mapped_column(String(40))


class CalendarException(Base):
    """A day the district declares a holiday or a working day, overriding the calendar data."""

    __tablename__ = "calendar_exceptions"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(100), default="")


class AnnouncedYear(Base):
    """A year whose State Council arrangement the district has entered in full."""

    __tablename__ = "announced_years"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entered_by: Mapped[str] = mapped_column(String(40))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Setting(Base):
    """A district-wide rule by name (SLA thresholds and the like)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutboxDoc(Base):
    """A CouchDB document written in the same transaction as the SQL change it mirrors.

    Flushed to CouchDB after commit and retried until it lands, so no change is lost while
    CouchDB is unreachable.
    """

    __tablename__ = "couch_outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    database: Mapped[str] = mapped_column(String(40))
    doc_id: Mapped[str] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")


class TownshipNode(Base):
    """A registered township node: where the district calls it and the key it presents.

    The key is kept in plain because the district must present it (``Authorization: Bearer``);
    only its SHA-256 leaves this table, in the ``township_node:<code>`` directory document.
    """

    __tablename__ = "township_nodes"
    code: Mapped[str] = mapped_column(ForeignKey("units.code"), primary_key=True)
    url: Mapped[str] = mapped_column(String(300))
    api_key: Mapped[str] = mapped_column(String(100))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NodeCheck(Base):
    """The district's latest look at a township node's replications (``GET /api/v1/replications``
    on the node, polled by ``central.services.node_health``): one row per township."""

    __tablename__ = "node_checks"
    township: Mapped[str] = mapped_column(String(12), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the district asked (district time)."""
    reachable: Mapped[bool] = mapped_column(Boolean)
    """The node answered with its replications (False: no answer, an error or a refused key)."""
    failing_jobs: Mapped[int] = mapped_column(Integer, default=0)
    jobs_total: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str] = mapped_column(Text, default="")
    """The failing jobs' ids and errors, or why the node could not be asked."""
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The last check that found the node reachable with no failing job."""


class Booking(Base):
    """A citizen's home-visit booking (上门办 booked on the public pages): the case it opened
    and where its visit stands. The case events stay the truth; this row follows them."""

    __tablename__ = "bookings"
    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    """Eight Crockford base32 characters, shown to the citizen (e.g. ``7K3M-Q9TX``)."""
    request_key: Mapped[str] = mapped_column(String(40), unique=True)
    """The confirm form's idempotency key: a double post finds the first booking."""
    case_id: Mapped[str] = mapped_column(String(80), unique=True)
    case_number: Mapped[str] = mapped_column(String(40), index=True)
    visit_id: Mapped[str] = mapped_column(String(40))
    township: Mapped[str] = mapped_column(String(12), index=True)
    village: Mapped[str] = mapped_column(String(12), index=True)
    item_code: Mapped[str] = mapped_column(String(40))
    item_name: Mapped[str] = mapped_column(String(200))
    person_name: Mapped[str] = mapped_column(String(60))
    """Who the visit is for (the case's applicant)."""
    address: Mapped[str] = mapped_column(String(200))
    qualification: Mapped[str] = mapped_column(String(12))
    """elderly, disabled, bedridden or other (``core.catalogue.Eligibility``)."""
    qualification_note: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(20), index=True)
    """The contact phone, digits only (normalised)."""
    day: Mapped[date] = mapped_column(Date, index=True)
    period: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(12), index=True)
    """requested, scheduled, cancelled or done."""
    staff_name: Mapped[str] = mapped_column(String(60), default="")
    note: Mapped[str] = mapped_column(String(300), default="")
    """The latest word for the citizen (e.g. why the township has not confirmed yet)."""
    case_hlc: Mapped[str] = mapped_column(String(80), default="")
    """The case's latest stamp when the booking last followed the read model."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Notification(Base):
    """One message to a citizen in the notification outbox (issue 6): written in the
    transaction of the change it tells about, sent later by the sender job.

    ``visit_day`` is set only for the kinds that must exist once per visit (the day-before
    reminder, the result notice); the unique constraint then makes a second enqueue fail,
    across restarts and processes. The other kinds leave it NULL (NULLs never collide), so
    every change of a booking gets its own message."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("booking_code", "kind", "visit_day"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    booking_code: Mapped[str] = mapped_column(ForeignKey("bookings.code"), index=True)
    case_number: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    """requested, confirmed, reminder, changed, cancelled or result_ready."""
    visit_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    body: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(10), index=True)
    """pending, sent or failed (after too many attempts)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class BookingRating(Base):
    """The citizen's rating of a booked home visit: one per booking (its primary key)."""

    __tablename__ = "booking_ratings"
    booking_code: Mapped[str] = mapped_column(ForeignKey("bookings.code"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(String(200), default="")
    event_id: Mapped[str] = mapped_column(String(120))
    rated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- the district read model's supervision tables (kept by central.services.district_model) --


class FleetEnrolment(Base):
    """An ``enrolment`` document as it reached the `district` database: a kiosk PC is live."""

    __tablename__ = "fleet_enrolments"
    registration: Mapped[str] = mapped_column(String(40), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(120))
    village: Mapped[str] = mapped_column(String(12), index=True)
    township: Mapped[str] = mapped_column(String(12), index=True)
    instance: Mapped[str] = mapped_column(String(80))
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FleetStatus(Base):
    """A ``kiosk_status:<village>:<instance>`` document as it reached the `district` database.

    ``seen_at`` is the district's own time when its projection first read this revision;
    ``skew_seconds`` is the kiosk's ``clock`` minus ``seen_at`` (see ``central.services.fleet``).
    """

    __tablename__ = "fleet_statuses"
    doc_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    rev: Mapped[str] = mapped_column(String(100))
    village: Mapped[str] = mapped_column(String(12), index=True)
    township: Mapped[str] = mapped_column(String(12), index=True)
    instance: Mapped[str] = mapped_column(String(80))
    registration: Mapped[str] = mapped_column(String(40), index=True)
    online: Mapped[bool | None] = mapped_column(Boolean)
    last_success: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")
    error_kind: Mapped[str] = mapped_column(String(20), default="")
    waiting: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    catalogue_version: Mapped[int | None] = mapped_column(Integer)
    clock: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    app_version: Mapped[str] = mapped_column(String(40), default="")
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    skew_seconds: Mapped[int | None] = mapped_column(Integer)


class CaseSupervision(Base):
    """One case as the district's supervision reads it: a narrow fact row (same ``case_id`` as
    its ``cases`` row), so the dashboard's figures scan this table alone, never the wide one."""

    __tablename__ = "case_supervision"
    __table_args__ = (
        # Today's colours and late follow-ups concern few rows: these partial indexes find the
        # ones of a period without reading its other rows.
        Index(
            "ix_case_supervision_supervised_opened_at", "opened_at",
            sqlite_where=text("yellow_on IS NOT NULL"),
            postgresql_where=text("yellow_on IS NOT NULL"),
        ),
        Index(
            "ix_case_supervision_follow_up_opened_at", "opened_at",
            sqlite_where=text("follow_up = 'open'"), postgresql_where=text("follow_up = 'open'"),
        ),
    )  # fmt: skip
    case_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    township: Mapped[str] = mapped_column(String(12), index=True)
    item_code: Mapped[str] = mapped_column(String(40), index=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    village: Mapped[str | None] = mapped_column(String(12))
    kind: Mapped[str | None] = mapped_column(String(12))
    mode: Mapped[str] = mapped_column(String(16))
    handling_level: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16))
    assignee: Mapped[str | None] = mapped_column(String(200))
    assignee_name: Mapped[str] = mapped_column(String(200), default="")
    item_name: Mapped[str] = mapped_column(String(200), default="")
    department: Mapped[str] = mapped_column(String(100), default="")
    """The item's 实施主体 in the district's catalogue when the case was last projected."""
    legal_days: Mapped[int | None] = mapped_column(Integer)
    """The item's legal limit (working days) in the catalogue then; None without one."""
    returns: Mapped[int] = mapped_column(Integer, default=0)
    due_on: Mapped[date | None] = mapped_column(Date)
    yellow_on: Mapped[date | None] = mapped_column(Date)
    """Set only while the case runs against its limit: the few rows whose colour is today's."""
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    promised_days: Mapped[int] = mapped_column(Integer)
    """The promised limit the case was opened under (working days)."""
    days_taken: Mapped[int | None] = mapped_column(Integer)
    """Working days from acceptance to completion, suspensions excluded; None if not completed."""
    completed_on: Mapped[date | None] = mapped_column(Date, index=True)
    rating_level: Mapped[int | None] = mapped_column(Integer)
    """The latest rating (1-5), None if unrated."""
    bad_rating: Mapped[bool] = mapped_column(Boolean, default=False)
    """Any 差评 (level 1 or 2)."""
    follow_up: Mapped[str] = mapped_column(String(8), default="")
    """``open`` or ``closed`` once a 差评 asked for a follow-up; empty otherwise."""
    follow_up_deadline: Mapped[date | None] = mapped_column(Date)
    transferred_to: Mapped[str | None] = mapped_column(String(12))


class SupervisionMonth(Base):
    """How often the fact rows of the cases opened in one month (district time) have changed:
    the projection's extension bumps it with every change, so a stored month rollup is good
    while it carries the same version."""

    __tablename__ = "supervision_months"
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    """The month's first day."""
    version: Mapped[int] = mapped_column(Integer)


class MonthFigures(Base):
    """One month's figures that change only with the cases (not with the day) for one group
    key in one township: the dashboard's figures over long periods add these up instead of
    reading every fact row (``central.services.rollups``). The row with township ``-`` marks
    the (group, month) as grouped at ``version``. The count columns are the dashboard's steady
    figures, by the same names."""

    __tablename__ = "month_figures"
    grp: Mapped[str] = mapped_column(String(12), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    township: Mapped[str] = mapped_column(String(12), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int] = mapped_column(Integer)
    cases: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    completed_late: Mapped[int] = mapped_column(Integer, default=0)
    nearby: Mapped[int] = mapped_column(Integer, default=0)
    no_trip: Mapped[int] = mapped_column(Integer, default=0)
    returns: Mapped[int] = mapped_column(Integer, default=0)
    provisional: Mapped[int] = mapped_column(Integer, default=0)
    days_taken_sum: Mapped[int] = mapped_column(Integer, default=0)
    promised_sum: Mapped[int] = mapped_column(Integer, default=0)
    legal_completed: Mapped[int] = mapped_column(Integer, default=0)
    legal_sum: Mapped[int] = mapped_column(Integer, default=0)
    rated: Mapped[int] = mapped_column(Integer, default=0)
    rating_1: Mapped[int] = mapped_column(Integer, default=0)
    rating_2: Mapped[int] = mapped_column(Integer, default=0)
    rating_3: Mapped[int] = mapped_column(Integer, default=0)
    rating_4: Mapped[int] = mapped_column(Integer, default=0)
    rating_5: Mapped[int] = mapped_column(Integer, default=0)
    bad: Mapped[int] = mapped_column(Integer, default=0)
    follow_up_open: Mapped[int] = mapped_column(Integer, default=0)
    follow_up_closed: Mapped[int] = mapped_column(Integer, default=0)
