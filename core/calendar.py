"""The district's working-day calendar: due dates counted in working days (行政许可法 Art. 82)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import chinese_calendar
import holidays
import msgspec

from core.errors import FieldError, InvalidInput

__all__ = [
    "CalendarException",
    "DueDate",
    "WorkCalendar",
    "calendar_from_settings",
    "calendar_to_settings",
    "covered_by_data",
    "statutory_holidays",
]

_ONE_DAY = timedelta(days=1)

# chinese_calendar raises NotImplementedError outside the years it holds (2004–2026 in 1.11.0).
_DATA_FIRST_YEAR = min(chinese_calendar.holidays).year
_DATA_LAST_YEAR = max(chinese_calendar.holidays).year

# Names `holidays` gives (in zh_CN) to the days the law fixes. Anything else it lists for China,
# namely the swapped days off of an announced arrangement ("休息日（由 … 调休）"), is left out:
# a provisional year has only weekends and these, never half an arrangement.
_STATUTORY_NAMES = frozenset(
    {"元旦", "农历除夕", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"}
)


class CalendarException(msgspec.Struct, frozen=True):
    """A district-entered day that is a working day (make-up day) or not (holiday)."""

    day: date
    workday: bool
    note: str = ""


class DueDate(msgspec.Struct, frozen=True):
    """A due date; ``provisional`` if a year without an announced arrangement was counted."""

    day: date
    provisional: bool = False


def covered_by_data(year: int) -> bool:
    """True if chinesecalendar holds the State Council's arrangement for ``year``."""
    return _DATA_FIRST_YEAR <= year <= _DATA_LAST_YEAR


@lru_cache(maxsize=8192)
def _data_is_workday(day: date) -> bool:
    """chinesecalendar's answer, cached: it scans its whole table on every call."""
    return bool(chinese_calendar.is_workday(day))


@lru_cache(maxsize=32)
def statutory_holidays(year: int) -> frozenset[date]:
    """The statutory holidays of ``year`` as the law fixes them, without swapped days."""
    # observed=False: no Monday-in-lieu days, which China does not have (it swaps by notice).
    days = holidays.China(years=year, observed=False, language="zh_CN")
    return frozenset(d for d, names in days.items() if _STATUTORY_NAMES & set(names.split("; ")))


@dataclass(frozen=True)
class WorkCalendar:
    """Working days: district exceptions, then chinesecalendar, then a provisional rule.

    A year chinesecalendar does not cover is *announced* once the district has entered the
    State Council's notice as exceptions (its holidays and make-up days come only from weekends
    and exceptions); otherwise it is *provisional*: weekends plus the statutory holidays.
    """

    exceptions: tuple[CalendarException, ...] = ()
    announced_years: frozenset[int] = frozenset()
    _by_day: dict[date, CalendarException] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        exceptions = tuple(sorted(self.exceptions, key=lambda e: e.day))
        by_day: dict[date, CalendarException] = {}
        for exc in exceptions:
            if exc.day in by_day:
                raise InvalidInput(
                    FieldError(
                        "exceptions",
                        f"{exc.day.isoformat()} 重复设置了例外日期",
                        f"{exc.day.isoformat()} is listed twice",
                    )
                )
            by_day[exc.day] = exc
        object.__setattr__(self, "exceptions", exceptions)
        object.__setattr__(self, "announced_years", frozenset(self.announced_years))
        object.__setattr__(self, "_by_day", by_day)

    def is_workday(self, day: date) -> bool:
        """True if ``day`` is a working day."""
        exc = self._by_day.get(day)
        if exc is not None:
            return exc.workday
        if covered_by_data(day.year):
            return _data_is_workday(day)
        if day.weekday() >= 5:
            return False
        if day.year in self.announced_years:
            return True
        return day not in statutory_holidays(day.year)

    def is_provisional(self, year: int) -> bool:
        """True if ``year`` has no data and the district has not entered its notice."""
        return not covered_by_data(year) and year not in self.announced_years

    def add_working_days(self, start: date, n: int) -> DueDate:
        """The n-th working day after ``start`` (``start`` not counted; n == 0 is ``start``)."""
        if n < 0:
            raise InvalidInput(
                FieldError("working_days", "工作日数不能为负数", "Working days cannot be negative")
            )
        day, left, provisional = start, n, False
        while left:
            day += _ONE_DAY
            provisional = provisional or self.is_provisional(day.year)
            if self.is_workday(day):
                left -= 1
        return DueDate(day, provisional)

    def working_days_between(self, a: date, b: date) -> int:
        """Working days after ``a`` up to and including ``b``; negative if ``b`` < ``a``."""
        if b < a:
            return -self.working_days_between(b, a)
        count, day = 0, a
        while day < b:
            day += _ONE_DAY
            count += self.is_workday(day)
        return count

    def provisional_years_in(self, start: date, end: date) -> tuple[int, ...]:
        """The provisional years from ``start`` to ``end`` (either order), ascending."""
        first, last = sorted((start.year, end.year))
        return tuple(y for y in range(first, last + 1) if self.is_provisional(y))


class _CalendarSettings(msgspec.Struct):
    exceptions: list[CalendarException] = []
    announced_years: list[int] = []


def calendar_from_settings(doc: Mapping[str, Any]) -> WorkCalendar:
    """Build the calendar from the calendar part of the district ``settings`` document."""
    try:
        parsed = msgspec.convert(doc, _CalendarSettings)
    except msgspec.ValidationError as exc:
        raise InvalidInput(
            FieldError("calendar", "工作日历设置格式有误", f"Invalid calendar settings: {exc}")
        ) from exc
    return WorkCalendar(tuple(parsed.exceptions), frozenset(parsed.announced_years))


def calendar_to_settings(cal: WorkCalendar) -> dict[str, Any]:
    """The calendar as plain data for the ``settings`` document (inverse of the above)."""
    return {
        "exceptions": msgspec.to_builtins(list(cal.exceptions)),
        "announced_years": sorted(cal.announced_years),
    }
