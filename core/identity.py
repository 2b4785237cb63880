"""Resident identity numbers (GB 11643) and unified social credit codes (GB 32100)."""

from __future__ import annotations

from datetime import date

from core.errors import FieldError, InvalidInput

__all__ = ["id_check_character", "mask_resident_id", "validate_credit_code", "validate_resident_id"]

# GB 11643-1999: ISO 7064 MOD 11-2 over the first 17 digits.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# GB 32100-2015: 31 characters, without I, O, S, V, Z.
_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUE = {c: i for i, c in enumerate(_CREDIT_ALPHABET)}
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _id_error(message: str, message_en: str) -> InvalidInput:
    return InvalidInput(FieldError("resident_id", message, message_en))


def _credit_error(message: str, message_en: str) -> InvalidInput:
    return InvalidInput(FieldError("credit_code", message, message_en))


def validate_resident_id(s: str, today: date | None = None) -> str:
    """Return the 18-character resident ID (a final x as X), or raise InvalidInput."""
    if not isinstance(s, str) or not s.strip():
        raise _id_error("请填写身份证号码", "A resident ID number is required")
    s = s.strip().upper()
    if len(s) != 18:
        raise _id_error(
            f"身份证号码应为18位，当前为{len(s)}位", f"An ID number has 18 characters, not {len(s)}"
        )
    body, check = s[:17], s[17]
    if not (body.isascii() and body.isdigit()) or check not in "0123456789X":
        raise _id_error(
            "身份证号码前17位应为数字，最后一位为数字或X",
            "An ID number is 17 digits then a digit or X",
        )
    try:
        born = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        raise _id_error(
            f"身份证号码中的出生日期 {s[6:14]} 不存在", f"Birth date {s[6:14]} does not exist"
        ) from None
    if born > (today or date.today()):
        raise _id_error("身份证号码中的出生日期晚于今天", "The birth date is in the future")
    if id_check_character(body) != check:
        raise _id_error("身份证号码校验位不正确，请核对", "The check character is wrong")
    return s


def id_check_character(body: str) -> str:
    """The check character of an ID number's first 17 digits (GB 11643, ISO 7064 MOD 11-2)."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def mask_resident_id(s: str) -> str:
    """Hide the middle of an ID number for display, e.g. 500109********0013."""
    s = s.strip().upper()
    if len(s) != 18:
        # Never show part of something malformed: it may not be split where we think.
        return "*" * len(s)
    return s[:6] + "*" * 8 + s[-4:]


def validate_credit_code(s: str) -> str:
    """Return the unified social credit code in upper case, or raise InvalidInput.

    Lower-case input is accepted and upper-cased: the code's alphabet has one case only, so
    a lower-case letter can only be a typing habit, never a different code.
    """
    if not isinstance(s, str) or not s.strip():
        raise _credit_error("请填写统一社会信用代码", "A unified social credit code is required")
    s = s.strip().upper()
    if len(s) != 18:
        raise _credit_error(
            f"统一社会信用代码应为18位，当前为{len(s)}位",
            f"A credit code has 18 characters, not {len(s)}",
        )
    bad = sorted({c for c in s if c not in _CREDIT_VALUE})
    if bad:
        shown = "、".join(bad)
        raise _credit_error(
            f"统一社会信用代码含有不允许的字符：{shown}（不使用 I、O、S、V、Z）",
            f"Characters not allowed in a credit code: {shown}",
        )
    total = sum(_CREDIT_VALUE[c] * w for c, w in zip(s[:17], _CREDIT_WEIGHTS, strict=True))
    if _CREDIT_ALPHABET[(31 - total % 31) % 31] != s[17]:
        raise _credit_error("统一社会信用代码校验位不正确，请核对", "The check character is wrong")
    return s
