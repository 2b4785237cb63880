"""One-time kiosk enrolment codes: issued by the district, checked by a township node."""

from __future__ import annotations

import secrets

from core.errors import FieldError, InvalidInput

__all__ = ["CODE_ALPHABET", "new_code", "normalise_code"]

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""No 0/O, 1/I: a code is read aloud over the phone and typed at the kiosk."""


def new_code() -> str:
    """A fresh code ``XXXX-XXXX-XXXX`` (60 bits)."""
    return "-".join("".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(3))


def normalise_code(code: str) -> str:
    """``XXXX-XXXX-XXXX`` from what was typed (case, blanks and dashes forgiven)."""
    chars = "".join(c for c in code.upper() if c not in " -\t")
    if len(chars) != 12 or not set(chars) <= set(CODE_ALPHABET):
        raise InvalidInput(
            FieldError("code", "启用码应为12位字母和数字, 格式 XXXX-XXXX-XXXX", "code format")
        )
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"
