"""Three-colour supervision (红黄绿): how close a case is to its promised limit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any

import msgspec

from core.calendar import WorkCalendar
from core.errors import FieldError, InvalidInput

__all__ = [
    "Colour",
    "SlaThresholds",
    "colour_of",
    "thresholds_from_settings",
    "thresholds_to_settings",
]


class Colour(StrEnum):
    """Supervision colour: green on time, yellow near the limit, red overdue."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"

    @property
    def label(self) -> str:
        """Chinese name of the colour."""
        return _COLOUR_LABELS[self]


_COLOUR_LABELS = {Colour.GREEN: "绿", Colour.YELLOW: "黄", Colour.RED: "红"}


class SlaThresholds(msgspec.Struct, frozen=True):
    """When a case turns yellow; each district may set its own."""

    yellow_remaining_days: int = 2
    yellow_elapsed_ratio: float = 0.8

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if self.yellow_remaining_days < 0:
            errors.append(
                FieldError(
                    "yellow_remaining_days",
                    "黄灯预警的剩余工作日数不能为负数",
                    "Remaining working days cannot be negative",
                )
            )
        if not 0 < self.yellow_elapsed_ratio <= 1:
            errors.append(
                FieldError(
                    "yellow_elapsed_ratio",
                    "黄灯预警的已用时限比例应大于0且不超过1",
                    "The elapsed ratio must be in (0, 1]",
                )
            )
        if errors:
            raise InvalidInput(errors)


def colour_of(
    accepted_on: date,
    due_on: date,
    today: date,
    calendar: WorkCalendar,
    thresholds: SlaThresholds | None = None,
) -> Colour:
    """The colour of a case accepted on ``accepted_on`` and due on ``due_on``, seen ``today``."""
    t = SlaThresholds() if thresholds is None else thresholds
    if today > due_on:
        return Colour.RED
    if calendar.working_days_between(today, due_on) <= t.yellow_remaining_days:
        return Colour.YELLOW
    limit = calendar.working_days_between(accepted_on, due_on)
    elapsed = calendar.working_days_between(accepted_on, today)
    if limit > 0 and elapsed / limit >= t.yellow_elapsed_ratio:
        return Colour.YELLOW
    return Colour.GREEN


def thresholds_from_settings(doc: Mapping[str, Any]) -> SlaThresholds:
    """Read the thresholds from the SLA part of the district ``settings`` document."""
    try:
        return msgspec.convert(doc, SlaThresholds)
    except msgspec.ValidationError as exc:
        raise InvalidInput(
            FieldError("sla", "红黄绿督办阈值设置格式有误", f"Invalid SLA settings: {exc}")
        ) from exc


def thresholds_to_settings(thresholds: SlaThresholds) -> dict[str, Any]:
    """The thresholds as plain data for the ``settings`` document."""
    return {
        "yellow_remaining_days": thresholds.yellow_remaining_days,
        "yellow_elapsed_ratio": thresholds.yellow_elapsed_ratio,
    }
