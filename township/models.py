"""The township node's own SQL tables (beside the case read model it shares with the district):
the visit calendar of the door-to-door dispatch."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKeyConstraint, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sync.readmodel import CASE_ID_LENGTH, NAMING

__all__ = [
    "TownshipBase",
    "metadata",
    "StaffAvailability",
    "VisitBooking",
    "VisitRow",
]


class TownshipBase(DeclarativeBase):
    """Declarative base of the node's own tables."""

    metadata = MetaData(naming_convention=NAMING)


metadata = TownshipBase.metadata


class StaffAvailability(TownshipBase):
    """A slot a staff member offers for home visits."""

    __tablename__ = "visit_offers"
    staff: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    staff_name: Mapped[str] = mapped_column(String(200))


class VisitBooking(TownshipBase):
    """A slot taken by a visit: deleted when the visit is moved away or cancelled (the slot is
    free again); kept with the ``outcome`` once the visit took place (done, citizen absent,
    more materials), so a day's route sheet stays as it was."""

    __tablename__ = "visit_bookings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["staff", "day", "period"],
            ["visit_offers.staff", "visit_offers.day", "visit_offers.period"],
            ondelete="RESTRICT",
        ),
    )
    staff: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LENGTH), index=True)
    visit_id: Mapped[str] = mapped_column(String(80))
    outcome: Mapped[str | None] = mapped_column(String(16))
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VisitRow(TownshipBase):
    """One home visit of a case as the calendar knows it: where it stands, its current slot
    (none while only requested), and what the route sheet needs of the case."""

    __tablename__ = "visits"
    case_id: Mapped[str] = mapped_column(String(CASE_ID_LENGTH), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    case_number: Mapped[str] = mapped_column(String(40), index=True)
    village: Mapped[str | None] = mapped_column(String(12))
    address: Mapped[str] = mapped_column(Text)
    applicant_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(40))
    item_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    """requested, scheduled, done, absent, more_materials, cancelled (``core.fold.VisitStatus``)."""
    day: Mapped[date] = mapped_column(Date, index=True)
    period: Mapped[str] = mapped_column(String(8))
    staff: Mapped[str | None] = mapped_column(String(200))
    staff_name: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text)
    """Why a request could not be confirmed, for the staff who pick another period."""
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
