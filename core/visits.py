"""Home visits (上门办): the periods of a working day, the same at the kiosk, the township and
the district's booking pages."""

from __future__ import annotations

from datetime import time

from core.errors import FieldError, InvalidInput

__all__ = ["PERIODS", "PERIOD_STARTS", "parse_period"]

PERIODS: dict[str, str] = {"am": "上午", "pm": "下午"}
"""The periods of a working day, in order, with their Chinese names."""
PERIOD_STARTS: dict[str, time] = {"am": time(9, 0), "pm": time(14, 0)}
"""When each period starts (China time): booking cutoffs count back from here."""
_ALIASES = {"am": "am", "pm": "pm", "上午": "am", "下午": "pm", "morning": "am", "afternoon": "pm"}


def parse_period(text: str) -> str:
    """``am`` or ``pm`` from either code or its Chinese name; InvalidInput otherwise."""
    found = _ALIASES.get(str(text).strip().lower())
    if found is None:
        raise InvalidInput(FieldError("period", "时段须为上午或下午", "The period is am or pm"))
    return found
