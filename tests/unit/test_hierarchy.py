from __future__ import annotations

import msgspec
import pytest

from core.errors import InvalidInput
from core.hierarchy import (
    Level,
    Unit,
    check_parent,
    is_within,
    level_of,
    parent_of,
    township_of,
    validate_code,
)

DISTRICT = "500109000000"  # 北碚区
TOWNSHIP = "500109001000"  # 天生街道
VILLAGE = "500109001201"
OTHER_TOWNSHIP = "500109102000"  # 澄江镇


def messages(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [e.message for e in exc.value.errors]


def test_validate_code_strips_blanks() -> None:
    assert validate_code(" 500109001000\n") == TOWNSHIP


@pytest.mark.parametrize(
    "bad",
    ["50010900100", "5001090010000", "50010900100A", "５００１０９００１０００", "5001-9001000"],
)
def test_validate_code_wants_twelve_digits(bad: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        validate_code(bad)
    assert exc.value.errors[0].field == "code"
    assert messages(exc) == ["区划代码应为12位数字"]


@pytest.mark.parametrize("bad", ["", "   "])
def test_validate_code_required(bad: str) -> None:
    with pytest.raises(InvalidInput, match="请填写区划代码"):
        validate_code(bad)


def test_validate_code_rejects_village_without_township() -> None:
    with pytest.raises(InvalidInput, match="镇街"):
        validate_code("500109000201")


def test_validate_code_rejects_zero_province() -> None:
    with pytest.raises(InvalidInput):
        validate_code("000109001000")


def test_county_part_ending_in_00_is_allowed() -> None:
    # 东莞 has no counties: its townships sit directly under 441900.
    assert level_of("441900003000") is Level.TOWNSHIP


@pytest.mark.parametrize(
    ("code", "level", "label"),
    [
        (DISTRICT, Level.DISTRICT, "区县"),
        (TOWNSHIP, Level.TOWNSHIP, "镇街"),
        (VILLAGE, Level.VILLAGE, "村社区"),
    ],
)
def test_level_of(code: str, level: Level, label: str) -> None:
    assert level_of(code) is level
    assert level.label == label


def test_parent_of() -> None:
    assert parent_of(VILLAGE) == TOWNSHIP
    assert parent_of(TOWNSHIP) == DISTRICT
    assert parent_of(DISTRICT) is None
    assert parent_of(" 500109001201 ") == TOWNSHIP


def test_is_within() -> None:
    assert is_within(VILLAGE, TOWNSHIP)
    assert is_within(VILLAGE, DISTRICT)
    assert is_within(TOWNSHIP, DISTRICT)
    assert is_within(TOWNSHIP, TOWNSHIP)
    assert not is_within(VILLAGE, OTHER_TOWNSHIP)
    assert not is_within(TOWNSHIP, VILLAGE)
    assert not is_within(DISTRICT, TOWNSHIP)
    assert not is_within(VILLAGE, "500110000000")


def test_township_of() -> None:
    assert township_of(VILLAGE) == TOWNSHIP
    assert township_of(TOWNSHIP) == TOWNSHIP
    assert township_of(DISTRICT) is None


def test_check_parent_accepts_the_unit_above() -> None:
    check_parent(VILLAGE, TOWNSHIP)
    check_parent(TOWNSHIP, DISTRICT)
    check_parent(DISTRICT, None)


@pytest.mark.parametrize(
    ("child", "parent", "fragment"),
    [
        (VILLAGE, DISTRICT, "村社区的上级应为镇街"),
        (TOWNSHIP, VILLAGE, "镇街的上级应为区县"),
        (TOWNSHIP, TOWNSHIP, "镇街的上级应为区县"),
        (VILLAGE, OTHER_TOWNSHIP, "不符"),
        (TOWNSHIP, "500110000000", "不符"),
        (VILLAGE, None, "必须有上级"),
        (DISTRICT, "500100000000", "区县没有上级"),
    ],
)
def test_check_parent_rejects_misfits(child: str, parent: str | None, fragment: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_parent(child, parent)
    assert exc.value.errors[0].field == "parent"
    assert fragment in exc.value.errors[0].message


def test_unit_is_frozen_and_round_trips() -> None:
    unit = Unit(
        code=VILLAGE, name="示范村（演示）", level=Level.VILLAGE, parent=TOWNSHIP, demo=True
    )
    with pytest.raises(AttributeError):
        unit.name = "x"  # type: ignore[misc]
    data = msgspec.json.encode(unit)
    assert msgspec.json.decode(data, type=Unit) == unit
    assert msgspec.to_builtins(unit)["level"] == "village"


def test_unit_lists_every_fault() -> None:
    with pytest.raises(InvalidInput) as exc:
        Unit(code=VILLAGE, name=" ", level=Level.TOWNSHIP, parent=DISTRICT)
    assert {e.field for e in exc.value.errors} == {"name", "level", "parent"}


def test_unit_rejects_bad_code() -> None:
    with pytest.raises(InvalidInput) as exc:
        Unit(code="123", name="x", level=Level.DISTRICT, parent=None)
    assert [e.field for e in exc.value.errors] == ["code"]
