from __future__ import annotations

from datetime import date

import pytest

from core.errors import InvalidInput
from core.identity import mask_resident_id, validate_credit_code, validate_resident_id
from tests.unit.conftest import vectors

IDS = vectors("id_numbers")
CODES = vectors("credit_codes")
TODAY = date(2026, 11, 28)

# What the message must mention for each kind of invalid vector, keyed by its "why".
ID_FAULTS = {
    "check digit wrong": "校验位",
    "no such date (30 February)": "出生日期",
    "no such date (1961 is not a leap year)": "出生日期",
    "birth date in the future": "晚于今天",
    "17 characters": "18位",
    "letter inside the number": "数字",
    "empty": "请填写",
}


@pytest.mark.parametrize("number", IDS["valid"])
def test_valid_resident_ids(number: str) -> None:
    assert validate_resident_id(number, today=TODAY) == number


@pytest.mark.parametrize("number", IDS["valid_lowercase_x"])
def test_lowercase_x_stored_as_upper(number: str) -> None:
    assert validate_resident_id(f" {number} ", today=TODAY) == number.upper()


@pytest.mark.parametrize("case", IDS["invalid"], ids=lambda c: c["why"])
def test_invalid_resident_ids(case: dict) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_resident_id(case["id"], today=TODAY)
    error = exc.value.errors[0]
    assert error.field == "resident_id"
    assert ID_FAULTS[case["why"]] in error.message


def test_birth_date_today_is_allowed_and_tomorrow_not() -> None:
    number = "50010920010815005X"
    assert validate_resident_id(number, today=date(2001, 8, 15)) == number
    with pytest.raises(InvalidInput, match="晚于今天"):
        validate_resident_id(number, today=date(2001, 8, 14))


def test_default_today_is_the_real_date() -> None:
    assert validate_resident_id(IDS["valid"][0]) == IDS["valid"][0]


def test_mask_resident_id() -> None:
    assert mask_resident_id("500109193805120013") == "500109********0013"
    assert mask_resident_id("50010920010815005x") == "500109********005X"
    assert mask_resident_id("12345") == "*****"


@pytest.mark.parametrize("code", CODES["valid"])
def test_valid_credit_codes(code: str) -> None:
    assert validate_credit_code(code) == code


# Fragment the message must contain, keyed by the vector's "why"; None: accepted by design
# (lower case is normalised to upper case, see validate_credit_code).
CODE_FAULTS = {
    "check character wrong": "校验位",
    "contains I, which the code's alphabet excludes": "不允许的字符：I",
    "17 characters": "18位",
    "lowercase (normalise to uppercase before checking, or reject with a clear message)": None,
}


@pytest.mark.parametrize("case", CODES["invalid"], ids=lambda c: c["why"])
def test_invalid_credit_code_vectors(case: dict) -> None:
    fragment = CODE_FAULTS[case["why"]]
    if fragment is None:
        assert validate_credit_code(f" {case['code']} ") == case["code"].upper()
        return
    with pytest.raises(InvalidInput) as exc:
        validate_credit_code(case["code"])
    error = exc.value.errors[0]
    assert error.field == "credit_code"
    assert fragment in error.message


@pytest.mark.parametrize("blank", ["", "  "])
def test_credit_code_required(blank: str) -> None:
    with pytest.raises(InvalidInput, match="请填写"):
        validate_credit_code(blank)
