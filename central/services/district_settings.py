"""District-wide settings: the working-day calendar's exceptions and the SLA thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db.models import AnnouncedYear, CalendarException, Item, Setting
from central.services.directory import publish_settings
from core.calendar import CalendarException as ExceptionValue
from core.calendar import WorkCalendar, calendar_to_settings, covered_by_data
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.sla import SlaThresholds, thresholds_from_settings, thresholds_to_settings

__all__ = [
    "work_calendar",
    "exceptions",
    "add_exception",
    "remove_exception",
    "set_year_announced",
    "sla_thresholds",
    "set_sla_thresholds",
    "provisional_years_in_use",
    "settings_document",
]

SLA_KEY = "sla"


def exceptions(session: Session) -> Sequence[CalendarException]:
    """The district's calendar exceptions by date."""
    return session.scalars(select(CalendarException).order_by(CalendarException.day)).all()


def work_calendar(session: Session) -> WorkCalendar:
    """The district's working-day calendar."""
    return WorkCalendar(
        exceptions=tuple(ExceptionValue(e.day, e.workday, e.note) for e in exceptions(session)),
        announced_years=frozenset(session.scalars(select(AnnouncedYear.year)).all()),
    )


def sla_thresholds(session: Session) -> SlaThresholds:
    """The district's three-colour thresholds (defaults until set)."""
    row = session.get(Setting, SLA_KEY)
    return thresholds_from_settings(row.value) if row else SlaThresholds()


def settings_document(session: Session) -> dict[str, Any]:
    """The body of the `settings` document every tier computes due dates and colours from."""
    return {
        "calendar": calendar_to_settings(work_calendar(session)),
        "sla": thresholds_to_settings(sla_thresholds(session)),
    }


def _changed(session: Session) -> None:
    session.flush()
    publish_settings(session, settings_document(session))
    session.commit()


def _parse_day(value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            FieldError("day", "日期格式应为 YYYY-MM-DD", "date must be YYYY-MM-DD")
        ) from None


def add_exception(session: Session, day: str | date, workday: bool, note: str) -> CalendarException:
    """Declare a day a holiday or a make-up working day."""
    parsed = _parse_day(day)
    if not 2000 <= parsed.year <= 2100:
        raise InvalidInput(FieldError("day", "日期超出范围", "date out of range"))
    if len(note) > 100:
        raise InvalidInput(FieldError("note", "说明不能超过100字", "note too long"))
    if session.get(CalendarException, parsed) is not None:
        raise Conflict(f"{parsed.isoformat()} 已设置过例外", "day")
    row = CalendarException(day=parsed, workday=workday, note=note.strip())
    session.add(row)
    _changed(session)
    return row


def remove_exception(session: Session, day: str | date) -> None:
    """Remove a calendar exception."""
    parsed = _parse_day(day)
    row = session.get(CalendarException, parsed)
    if row is None:
        raise NotFound("例外日期", parsed.isoformat())
    session.delete(row)
    _changed(session)


def set_year_announced(session: Session, year: int, announced: bool, user: str) -> None:
    """Mark a year's State Council arrangement as entered (its due dates stop being provisional)."""
    if covered_by_data(year):
        raise InvalidInput(
            FieldError(
                "year", f"{year}年的安排已由日历数据提供", "the calendar data covers that year"
            )
        )
    if not 2000 <= year <= 2100:
        raise InvalidInput(FieldError("year", "年份超出范围", "year out of range"))
    row = session.get(AnnouncedYear, year)
    if announced and row is None:
        session.add(AnnouncedYear(year=year, entered_by=user, entered_at=datetime.now(UTC)))
    elif not announced and row is not None:
        session.delete(row)
    _changed(session)


def set_sla_thresholds(
    session: Session, yellow_remaining_days: int, yellow_elapsed_ratio: float
) -> SlaThresholds:
    """Change when cases turn yellow."""
    thresholds = SlaThresholds(yellow_remaining_days, yellow_elapsed_ratio)
    row = session.get(Setting, SLA_KEY) or Setting(key=SLA_KEY, value={})
    row.value = thresholds_to_settings(thresholds)
    session.add(row)
    _changed(session)
    return thresholds


def provisional_years_in_use(session: Session, today: date) -> tuple[int, ...]:
    """Years a due date computed today could reach that are still provisional.

    Reach is the longest legal (or promised) limit in the catalogue, counted from today.
    """
    cal = work_calendar(session)
    longest = 0
    for body in session.scalars(select(Item.body).where(Item.retired.is_(False))):
        longest = max(
            longest, body.get("legal_limit_days") or 0, body.get("promised_limit_days") or 0
        )
    end = cal.add_working_days(today, longest).day if longest else today
    return cal.provisional_years_in(today, end)
