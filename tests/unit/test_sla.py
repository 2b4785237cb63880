from __future__ import annotations

from datetime import date

import pytest

from core.calendar import WorkCalendar
from core.errors import InvalidInput
from core.sla import (
    Colour,
    SlaThresholds,
    colour_of,
    thresholds_from_settings,
    thresholds_to_settings,
)

CAL = WorkCalendar()
# Accepted Mon 2026-06-01 with a 10-working-day limit: due Mon 2026-06-15 (端午 06-19 is later).
ACCEPTED, DUE = date(2026, 6, 1), date(2026, 6, 15)


def colour(today: date, thresholds: SlaThresholds | None = None) -> Colour:
    return colour_of(ACCEPTED, DUE, today, CAL, thresholds)


def test_labels() -> None:
    assert [c.label for c in Colour] == ["绿", "黄", "红"]
    assert Colour.RED == "red"


def test_green_early_on() -> None:
    assert colour(date(2026, 6, 1)) is Colour.GREEN
    assert colour(date(2026, 6, 5)) is Colour.GREEN  # 4 of 10 used, 6 left


def test_yellow_by_elapsed_ratio() -> None:
    # 06-11: 8 of 10 working days used (ratio 0.8), 2 left.
    assert colour(date(2026, 6, 10)) is Colour.GREEN  # 7 used, 3 left
    assert colour(date(2026, 6, 10), SlaThresholds(yellow_elapsed_ratio=0.7)) is Colour.YELLOW


def test_yellow_by_remaining_days() -> None:
    assert colour(date(2026, 6, 11)) is Colour.YELLOW  # 2 left
    assert colour(date(2026, 6, 10), SlaThresholds(yellow_remaining_days=3)) is Colour.YELLOW
    strict = SlaThresholds(yellow_remaining_days=0, yellow_elapsed_ratio=1.0)
    assert colour(date(2026, 6, 12), strict) is Colour.GREEN  # 1 left, 9 of 10
    assert colour(DUE, strict) is Colour.YELLOW


def test_due_day_is_yellow_and_after_it_red() -> None:
    assert colour(DUE) is Colour.YELLOW
    assert colour(date(2026, 6, 16)) is Colour.RED


def test_weekend_before_due_counts_no_working_days() -> None:
    # Saturday 06-13: only Monday 06-15 remains.
    assert colour(date(2026, 6, 13)) is Colour.YELLOW


def test_immediate_item_same_day() -> None:
    day = date(2026, 6, 1)
    assert colour_of(day, day, day, CAL) is Colour.YELLOW
    assert colour_of(day, day, date(2026, 6, 2), CAL) is Colour.RED


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"yellow_remaining_days": -1}, "yellow_remaining_days"),
        ({"yellow_elapsed_ratio": 0.0}, "yellow_elapsed_ratio"),
        ({"yellow_elapsed_ratio": 1.01}, "yellow_elapsed_ratio"),
        ({"yellow_elapsed_ratio": float("nan")}, "yellow_elapsed_ratio"),
    ],
)
def test_threshold_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        SlaThresholds(**kwargs)
    assert [e.field for e in exc.value.errors] == [field]


def test_threshold_validation_lists_both_faults() -> None:
    with pytest.raises(InvalidInput) as exc:
        SlaThresholds(yellow_remaining_days=-1, yellow_elapsed_ratio=2)
    assert len(exc.value.errors) == 2


def test_settings_round_trip() -> None:
    t = SlaThresholds(yellow_remaining_days=3, yellow_elapsed_ratio=0.75)
    doc = thresholds_to_settings(t)
    assert doc == {"yellow_remaining_days": 3, "yellow_elapsed_ratio": 0.75}
    assert thresholds_from_settings(doc) == t
    assert thresholds_from_settings({}) == SlaThresholds()
    assert thresholds_from_settings({"yellow_elapsed_ratio": 1}).yellow_elapsed_ratio == 1.0


@pytest.mark.parametrize("doc", [{"yellow_remaining_days": "2"}, {"yellow_remaining_days": True}])
def test_settings_bad_shape(doc: dict) -> None:
    with pytest.raises(InvalidInput) as exc:
        thresholds_from_settings(doc)
    assert exc.value.errors[0].field == "sla"


def test_settings_bad_values() -> None:
    with pytest.raises(InvalidInput) as exc:
        thresholds_from_settings({"yellow_remaining_days": -2})
    assert exc.value.errors[0].field == "yellow_remaining_days"
