"""The visit calendar's pure parts: periods, slots named by forms, working days ahead."""

from __future__ import annotations

from datetime import date

import pytest

from core.calendar import WorkCalendar
from core.errors import InvalidInput
from township.visits import Slot, parse_period, parse_slot, working_days


@pytest.mark.parametrize(("text", "period"), [("am", "am"), ("上午", "am"), (" PM ", "pm"),
                                              ("下午", "pm")])  # fmt: skip
def test_periods_by_code_or_chinese_name(text: str, period: str) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["", "evening", "晚上"])
def test_other_periods_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_period(text)


def test_a_slot_round_trips_through_its_form_key() -> None:
    slot = Slot(date(2026, 10, 8), "pm", "zhang.t")
    assert slot.key == "2026-10-08|pm|zhang.t" and parse_slot(slot.key) == slot
    assert parse_slot("2026-10-08|下午|Zhang.T") == slot
    for bad in ("", "2026-10-08|pm", "2026-13-01|am|x", "2026-10-08|noon|x"):
        with pytest.raises(InvalidInput):
            parse_slot(bad)


def test_working_days_skip_the_national_day_break_and_keep_make_up_saturdays() -> None:
    days = working_days(WorkCalendar(), date(2026, 9, 30), 4)
    assert days == [date(2026, 9, 30), date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]
