"""Shared test data: a demo village and township, and the catalogue item stand-in cases are for."""

from __future__ import annotations

from datetime import UTC, datetime

from core.catalogue import CatalogueItem, HandlingLevel, Kind, Mode
from core.identity import id_check_character

__all__ = ["VILLAGE", "TOWNSHIP", "ITEM", "START", "resident_id"]

VILLAGE, TOWNSHIP = "500109110201", "500109110000"
"""A (fictitious demo) village of 静观镇, and 静观镇 itself."""

ITEM = CatalogueItem(
    code="500109ZW0004",
    name="高龄津贴申请",
    kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP,
    modes=(Mode.AGENCY,),
    department="区民政局",
    legal_limit_days=20,
    promised_limit_days=15,
)
"""高龄津贴申请, handled by the township within 15 working days."""

START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
"""A Monday morning (09:00 in China) when the test stories begin."""


def resident_id(body: str) -> str:
    """A valid 18-character ID number from its first 17 digits."""
    return body + id_check_character(body)
