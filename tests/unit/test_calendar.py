from __future__ import annotations

from datetime import date

import holidays
import pytest

from core.calendar import (
    CalendarException,
    DueDate,
    WorkCalendar,
    calendar_from_settings,
    calendar_to_settings,
    covered_by_data,
    statutory_holidays,
)
from core.errors import InvalidInput
from tests.unit.conftest import vectors

WORKDAYS = vectors("workdays_2026")
PLAIN = WorkCalendar()


def case_id(case: dict) -> str:
    return f"{case['accepted_on']}+{case['working_days']}"


@pytest.mark.parametrize("case", WORKDAYS["cases"], ids=case_id)
def test_vector_cases(case: dict) -> None:
    due = PLAIN.add_working_days(date.fromisoformat(case["accepted_on"]), case["working_days"])
    assert due == DueDate(date.fromisoformat(case["due_on"]), provisional=False)


@pytest.mark.parametrize("case", WORKDAYS["no_data"], ids=case_id)
def test_vector_no_data_cases_are_provisional(case: dict) -> None:
    due = PLAIN.add_working_days(date.fromisoformat(case["accepted_on"]), case["working_days"])
    assert due.day == date.fromisoformat(case["due_on"])
    assert due.provisional is case["provisional"] is True


@pytest.mark.parametrize("day", WORKDAYS["make_up_working_days_2026"])
def test_make_up_days_are_working_days(day: str) -> None:
    d = date.fromisoformat(day)
    assert d.weekday() >= 5
    assert PLAIN.is_workday(d)


def test_holidays_and_weekends_are_not_working_days() -> None:
    assert not PLAIN.is_workday(date(2026, 10, 1))  # 国庆节
    assert not PLAIN.is_workday(date(2026, 10, 7))  # swapped day off
    assert not PLAIN.is_workday(date(2026, 11, 28))  # Saturday
    assert PLAIN.is_workday(date(2026, 11, 30))


def test_zero_days_is_the_same_day() -> None:
    assert PLAIN.add_working_days(date(2026, 10, 1), 0) == DueDate(date(2026, 10, 1), False)
    assert PLAIN.add_working_days(date(2027, 3, 1), 0).day == date(2027, 3, 1)


def test_negative_days_rejected() -> None:
    with pytest.raises(InvalidInput) as exc:
        PLAIN.add_working_days(date(2026, 1, 5), -1)
    assert exc.value.errors[0].field == "working_days"


def test_holidays_observed_flag_gives_only_statutory_days() -> None:
    # observed=True would add Monday-in-lieu days, which China does not have.
    assert date(2027, 5, 3) in holidays.China(years=2027, observed=True)
    assert date(2027, 5, 3) not in holidays.China(years=2027, observed=False)
    days = statutory_holidays(2027)
    assert len(days) == 13  # 元旦 1, 春节 4, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3
    assert days <= frozenset(holidays.China(years=2027, observed=False))
    assert {date(2027, 1, 1), date(2027, 2, 5), date(2027, 5, 2), date(2027, 10, 3)} <= days


def test_statutory_holidays_leave_out_swapped_days() -> None:
    # For a year with an announced arrangement `holidays` lists swapped days off too.
    assert date(2026, 10, 7) in holidays.China(years=2026, observed=False)
    days = statutory_holidays(2026)
    assert len(days) == 13
    assert date(2026, 10, 7) not in days
    assert date(2026, 2, 16) in days  # 除夕


def test_coverage_and_provisional_years() -> None:
    assert covered_by_data(2004) and covered_by_data(2026)
    assert not covered_by_data(2027) and not covered_by_data(2003)
    assert not PLAIN.is_provisional(2026)
    assert PLAIN.is_provisional(2027)
    assert PLAIN.provisional_years_in(date(2026, 12, 1), date(2028, 1, 2)) == (2027, 2028)
    assert PLAIN.provisional_years_in(date(2028, 1, 2), date(2026, 12, 1)) == (2027, 2028)
    assert PLAIN.provisional_years_in(date(2026, 1, 1), date(2026, 12, 31)) == ()


def test_provisional_year_uses_weekends_and_statutory_holidays() -> None:
    assert not PLAIN.is_workday(date(2027, 1, 1))  # 元旦, Friday
    assert not PLAIN.is_workday(date(2027, 2, 8))  # 春节, Monday
    assert not PLAIN.is_workday(date(2027, 2, 20))  # Saturday, no make-up day known
    assert PLAIN.is_workday(date(2027, 2, 9))
    due = PLAIN.add_working_days(date(2027, 2, 4), 1)
    assert due == DueDate(date(2027, 2, 9), provisional=True)


def test_exceptions_override_chinese_calendar() -> None:
    cal = WorkCalendar(
        exceptions=(
            CalendarException(date(2026, 11, 30), workday=False, note="区级停工"),
            CalendarException(date(2026, 10, 1), workday=True, note="测试"),
        )
    )
    assert not cal.is_workday(date(2026, 11, 30))
    assert cal.is_workday(date(2026, 10, 1))
    assert cal.add_working_days(date(2026, 11, 27), 1).day == date(2026, 12, 1)
    assert cal.exceptions[0].day == date(2026, 10, 1)  # kept sorted


def test_exceptions_override_provisional_year() -> None:
    cal = WorkCalendar(exceptions=(CalendarException(date(2027, 1, 4), False, "春节调休"),))
    assert not cal.is_workday(date(2027, 1, 4))
    assert cal.add_working_days(date(2026, 12, 31), 1) == DueDate(date(2027, 1, 5), True)


def test_announced_year_is_not_provisional() -> None:
    notice = (
        CalendarException(date(2027, 1, 1), False, "元旦"),
        CalendarException(date(2027, 2, 20), True, "春节调休"),
    )
    cal = WorkCalendar(exceptions=notice, announced_years=frozenset({2027}))
    assert not cal.is_provisional(2027)
    assert cal.is_provisional(2028)
    assert cal.provisional_years_in(date(2026, 12, 1), date(2027, 12, 31)) == ()
    assert cal.add_working_days(date(2026, 12, 31), 1) == DueDate(date(2027, 1, 4), False)
    assert cal.is_workday(date(2027, 2, 20))
    # Announced: holidays come only from the exceptions, not from the provisional rule.
    assert cal.is_workday(date(2027, 2, 8))
    assert not cal.is_workday(date(2027, 2, 6))  # weekend


def test_provisional_flag_only_when_a_provisional_day_is_examined() -> None:
    assert not PLAIN.add_working_days(date(2026, 12, 28), 3).provisional  # ends 12-31
    assert PLAIN.add_working_days(date(2026, 12, 28), 4).provisional


def test_duplicate_exception_days_rejected() -> None:
    day = date(2027, 2, 20)
    with pytest.raises(InvalidInput, match="重复"):
        WorkCalendar(exceptions=(CalendarException(day, True), CalendarException(day, False)))


def test_working_days_between() -> None:
    assert PLAIN.working_days_between(date(2026, 9, 30), date(2026, 10, 13)) == 5
    assert PLAIN.working_days_between(date(2026, 10, 13), date(2026, 9, 30)) == -5
    assert PLAIN.working_days_between(date(2026, 9, 30), date(2026, 9, 30)) == 0
    assert PLAIN.working_days_between(date(2026, 11, 28), date(2026, 11, 30)) == 1


@pytest.mark.parametrize("case", WORKDAYS["cases"] + WORKDAYS["no_data"], ids=case_id)
def test_working_days_between_inverts_add(case: dict) -> None:
    start = date.fromisoformat(case["accepted_on"])
    due = date.fromisoformat(case["due_on"])
    assert PLAIN.working_days_between(start, due) == case["working_days"]


def test_settings_round_trip() -> None:
    doc = {
        "exceptions": [
            {"day": "2027-02-20", "workday": True, "note": "春节调休"},
            {"day": "2027-01-01", "workday": False, "note": "元旦"},
        ],
        "announced_years": [2027],
    }
    cal = calendar_from_settings(doc)
    assert cal.is_workday(date(2027, 2, 20))
    assert cal.announced_years == frozenset({2027})
    out = calendar_to_settings(cal)
    assert out == {
        "exceptions": [
            {"day": "2027-01-01", "workday": False, "note": "元旦"},
            {"day": "2027-02-20", "workday": True, "note": "春节调休"},
        ],
        "announced_years": [2027],
    }
    assert calendar_from_settings(out) == cal


def test_settings_defaults() -> None:
    assert calendar_from_settings({}) == WorkCalendar()
    assert calendar_to_settings(WorkCalendar()) == {"exceptions": [], "announced_years": []}


@pytest.mark.parametrize(
    "doc",
    [
        {"exceptions": [{"day": "2027-02-30", "workday": True}]},
        {"exceptions": [{"day": "2027-02-20", "workday": "yes"}]},
        {"announced_years": ["2027"]},
    ],
)
def test_settings_bad_shape(doc: dict) -> None:
    with pytest.raises(InvalidInput) as exc:
        calendar_from_settings(doc)
    assert exc.value.errors[0].field == "calendar"
    assert "格式有误" in exc.value.errors[0].message
