"""Statistical division codes (12 digits) for the district → township → village hierarchy."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from core.errors import FieldError, InvalidInput

__all__ = [
    "Level",
    "Unit",
    "check_parent",
    "is_within",
    "level_of",
    "parent_of",
    "township_of",
    "validate_code",
]


class Level(StrEnum):
    """The three levels of the service network."""

    DISTRICT = "district"
    TOWNSHIP = "township"
    VILLAGE = "village"

    @property
    def label(self) -> str:
        """Chinese name of the level."""
        return _LEVEL_LABELS[self]


_LEVEL_LABELS = {Level.DISTRICT: "区县", Level.TOWNSHIP: "镇街", Level.VILLAGE: "村社区"}

# How many leading digits a unit of each level shares with everything inside it.
_PREFIX = {Level.DISTRICT: 6, Level.TOWNSHIP: 9, Level.VILLAGE: 12}


def _invalid(message: str, message_en: str, field: str = "code") -> InvalidInput:
    return InvalidInput(FieldError(field=field, message=message, message_en=message_en))


def validate_code(code: str) -> str:
    """Return the code stripped of blanks, or raise InvalidInput if it is not a division code."""
    if not isinstance(code, str) or not code.strip():
        raise _invalid("请填写区划代码", "A division code is required")
    code = code.strip()
    if len(code) != 12 or not (code.isascii() and code.isdigit()):
        raise _invalid("区划代码应为12位数字", "A division code is 12 digits")
    # Only the province part is checked: cities without counties (东莞 441900) put their
    # townships straight under a code ending in 00, so "xxxx00" is a valid county part.
    if code[:2] == "00":
        raise _invalid("区划代码前2位应为省级代码", "The first 2 digits must be a province code")
    if code[6:9] == "000" and code[9:] != "000":
        raise _invalid(
            "区划代码第7至9位（镇街）不能为000",
            "Digits 7-9 (township) cannot be 000 in a village code",
        )
    return code


def level_of(code: str) -> Level:
    """The level a division code stands for."""
    code = validate_code(code)
    if code[6:] == "000000":
        return Level.DISTRICT
    if code[9:] == "000":
        return Level.TOWNSHIP
    return Level.VILLAGE


def parent_of(code: str) -> str | None:
    """The code of the unit directly above, or None for a district."""
    level = level_of(code)
    code = code.strip()
    if level is Level.DISTRICT:
        return None
    if level is Level.TOWNSHIP:
        return code[:6] + "000000"
    return code[:9] + "000"


def is_within(code: str, ancestor: str) -> bool:
    """True if ``code`` is ``ancestor`` itself or lies anywhere beneath it."""
    code = validate_code(code)
    ancestor = validate_code(ancestor)
    width = _PREFIX[level_of(ancestor)]
    return code[:width] == ancestor[:width]


def township_of(code: str) -> str | None:
    """The township a code belongs to (itself for a township), or None for a district."""
    level = level_of(code)
    if level is Level.DISTRICT:
        return None
    return code.strip()[:9] + "000"


def check_parent(child_code: str, parent_code: str | None) -> None:
    """Raise InvalidInput unless ``parent_code`` is the unit directly above ``child_code``."""
    level = level_of(child_code)
    if level is Level.DISTRICT:
        if parent_code is not None:
            raise _invalid("区县没有上级单位", "A district has no parent unit", "parent")
        return
    expected = parent_of(child_code)
    if parent_code is None:
        raise _invalid(
            f"{level.label}必须有上级单位（应为 {expected}）",
            f"A {level.value} needs a parent unit ({expected})",
            "parent",
        )
    parent_code = validate_code(parent_code)
    if parent_code == expected:
        return
    want = Level.DISTRICT if level is Level.TOWNSHIP else Level.TOWNSHIP
    if level_of(parent_code) is not want:
        raise _invalid(
            f"{level.label}的上级应为{want.label}",
            f"The parent of a {level.value} must be a {want.value}",
            "parent",
        )
    raise _invalid(
        f"上级单位代码 {parent_code} 与区划代码 {child_code.strip()} 不符（应为 {expected}）",
        f"Parent {parent_code} does not contain {child_code.strip()} (expected {expected})",
        "parent",
    )


class Unit(msgspec.Struct, frozen=True):
    """One unit of the hierarchy: a district, a township/street or a village/community."""

    code: str
    name: str
    level: Level
    parent: str | None
    demo: bool = False

    def __post_init__(self) -> None:
        errors = _name_errors(self.name)
        try:
            actual = level_of(self.code)
        except InvalidInput as exc:
            raise InvalidInput(exc.errors + errors) from exc
        if self.code != self.code.strip():
            errors.append(
                FieldError("code", "区划代码不能含空格", "The code must not contain blanks")
            )
        if actual != self.level:
            errors.append(
                FieldError(
                    "level",
                    f"区划代码 {self.code} 对应的层级是{actual.label}",
                    f"Code {self.code} is a {actual.value}",
                )
            )
        try:
            check_parent(self.code, self.parent)
        except InvalidInput as exc:
            errors.extend(exc.errors)
        if errors:
            raise InvalidInput(errors)


def _name_errors(name: str) -> list[FieldError]:
    if not isinstance(name, str) or not name.strip():
        return [FieldError("name", "请填写单位名称", "A unit name is required")]
    return []
