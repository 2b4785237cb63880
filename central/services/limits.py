"""Abuse limits on citizens' bookings (issue 6 item 9): caps on open bookings and field lengths.

A phone number and an address may each hold at most ``MAX_OPEN_PER_PHONE`` /
``MAX_OPEN_PER_ADDRESS`` open (requested or scheduled) bookings. The check runs when the form
is checked (step 1 of the public pages and again when the booking is made), so a citizen
hears it before picking a period. It is a soft cap: two bookings made in the same instant by
the same phone may both pass the count (the harm is one booking too many, not a lost slot).

Addresses compare within the village, ignoring blanks and full-width/half-width differences.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.db.models import Booking
from core.errors import FieldError, InvalidInput

__all__ = [
    "MAX_OPEN_PER_PHONE",
    "MAX_OPEN_PER_ADDRESS",
    "FIELD_LIMITS",
    "same_address",
    "check_open_bookings",
    "check_lengths",
]

MAX_OPEN_PER_PHONE = 3
MAX_OPEN_PER_ADDRESS = 3
_OPEN = ("requested", "scheduled")

FIELD_LIMITS: dict[str, tuple[int, str]] = {
    "item_code": (40, "服务事项"),
    "village": (12, "村(社区)"),
    "person_name": (30, "姓名"),
    "id_number": (18, "身份证号码"),
    "address": (200, "住址"),
    "qualification": (20, "上门服务原因"),
    "qualification_note": (200, "情况说明"),
    "phone": (30, "联系电话"),
    "code": (20, "预约码"),
    "case_number": (60, "办件编号"),
    "comment": (200, "评价意见"),
    "period": (20, "时段"),
    "day": (20, "日期"),
}
"""The longest value each public field takes (characters), with its Chinese name."""


def _plain(address: str) -> str:
    return "".join(unicodedata.normalize("NFKC", address).split()).lower()


def same_address(a: str, b: str) -> bool:
    """Whether two typed addresses are the same (blanks and character widths ignored)."""
    return _plain(a) == _plain(b)


def check_open_bookings(session: Session, phone: str, village: str, address: str) -> None:
    """Refuse (InvalidInput, in Chinese) a new booking over the caps for this phone or address."""
    errors: list[FieldError] = []
    by_phone = session.scalar(
        select(func.count()).where(Booking.phone == phone, Booking.status.in_(_OPEN))
    )
    if phone and (by_phone or 0) >= MAX_OPEN_PER_PHONE:
        errors.append(
            FieldError(
                "phone",
                f"这个电话号码已有 {MAX_OPEN_PER_PHONE} 个未完成的上门预约, "
                "请等已有预约办完或取消后再预约",
                "Too many open bookings for this phone",
            )
        )
    addresses = session.scalars(
        select(Booking.address).where(Booking.village == village, Booking.status.in_(_OPEN))
    ).all()
    if address and sum(same_address(a, address) for a in addresses) >= MAX_OPEN_PER_ADDRESS:
        errors.append(
            FieldError(
                "address",
                f"这个住址已有 {MAX_OPEN_PER_ADDRESS} 个未完成的上门预约, "
                "请等已有预约办完或取消后再预约",
                "Too many open bookings for this address",
            )
        )
    if errors:
        raise InvalidInput(errors)


def check_lengths(values: dict[str, str]) -> None:
    """Refuse (InvalidInput, in Chinese) any value longer than its field allows."""
    errors = [
        FieldError(name, f"{FIELD_LIMITS[name][1]}不能超过{FIELD_LIMITS[name][0]}个字", "Too long")
        for name, value in values.items()
        if name in FIELD_LIMITS and len(value) > FIELD_LIMITS[name][0]
    ]
    if errors:
        raise InvalidInput(errors)
