"""Catalogue items: the services every tier offers, with their materials and time limits."""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from core.errors import FieldError, InvalidInput

__all__ = [
    "Kind",
    "HandlingLevel",
    "Mode",
    "CaseType",
    "MaterialForm",
    "Eligibility",
    "ITEM_TYPES",
    "SERVICE_OBJECTS",
    "Material",
    "CatalogueItem",
    "validate_item",
    "item_fingerprint",
]


class Kind(StrEnum):
    """The four services of 三级四务."""

    PARTY = "party"
    GOVERNMENT = "government"
    BUSINESS = "business"
    LIFE = "life"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"party": "党务", "government": "政务", "business": "商务", "life": "生活"}[
            self.value
        ]


class HandlingLevel(StrEnum):
    """The level whose unit decides the case."""

    VILLAGE = "village"
    TOWNSHIP = "township"
    DISTRICT = "district"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"village": "村(社区)", "township": "镇(街道)", "district": "区县"}[self.value]


class Mode(StrEnum):
    """Ways a case can be served."""

    ON_THE_SPOT = "on_the_spot"
    AGENCY = "agency"
    DOOR_TO_DOOR = "door_to_door"
    VIDEO = "video"
    WINDOW = "window"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "on_the_spot": "就近办",
            "agency": "帮代办",
            "door_to_door": "上门办",
            "video": "视频办",
            "window": "窗口办",
        }[self.value]


class CaseType(StrEnum):
    """办件类型: handled at once, or within a promised limit."""

    IMMEDIATE = "immediate"
    PROMISED = "promised"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"immediate": "即办件", "promised": "承诺件"}[self.value]


class MaterialForm(StrEnum):
    """How a material is presented."""

    ORIGINAL = "original"
    COPY = "copy"
    ELECTRONIC = "electronic"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"original": "原件", "copy": "复印件", "electronic": "电子件"}[self.value]


class Eligibility(StrEnum):
    """Who may ask for a door-to-door visit."""

    ELDERLY = "elderly"
    DISABLED = "disabled"
    BEDRIDDEN = "bedridden"
    OTHER = "other"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "elderly": "高龄老人",
            "disabled": "残疾人",
            "bedridden": "卧床不起",
            "other": "其他特殊困难",
        }[self.value]


ITEM_TYPES: dict[str, str] = {
    "01": "行政许可",
    "02": "行政处罚",
    "03": "行政强制",
    "04": "行政征收",
    "05": "行政给付",
    "06": "行政检查",
    "07": "行政确认",
    "08": "行政奖励",
    "09": "行政裁决",
    "10": "其他行政权力",
    "20": "公共服务",
}
"""事项类型 codes (public implementations of the national list)."""

SERVICE_OBJECTS: dict[str, str] = {
    "1": "自然人",
    "2": "企业法人",
    "3": "事业法人",
    "4": "社会组织法人",
    "5": "非法人企业",
    "6": "行政机关",
    "9": "其他组织",
}
"""服务对象 codes."""


class Material(msgspec.Struct, frozen=True, kw_only=True):
    """One material on an item's checklist."""

    key: str
    name: str
    form: MaterialForm = MaterialForm.ORIGINAL
    copies: int = 1
    required: bool = True
    may_follow: bool = False
    follow_days: int | None = None
    source: str = ""
    standard: str = ""
    templates: tuple[str, ...] = ()


class CatalogueItem(msgspec.Struct, frozen=True, kw_only=True):
    """A service of the catalogue, as an administrator edits it and a publish freezes it."""

    code: str
    name: str
    kind: Kind
    handling_level: HandlingLevel
    modes: tuple[Mode, ...]
    department: str
    impl_code: str = ""
    item_type: str = "20"
    service_objects: tuple[str, ...] = ("1",)
    case_type: CaseType = CaseType.PROMISED
    door_to_door_for: tuple[Eligibility, ...] = ()
    materials: tuple[Material, ...] = ()
    legal_limit_days: int | None = None
    promised_limit_days: int = 0
    limit_note: str = ""
    visits_needed: int = 1
    fee: bool = False
    fee_basis: str = ""
    conditions: str = ""
    place: str = ""
    hours: str = ""
    consult: str = ""
    complaint: str = ""
    process: str = ""
    retired: bool = False


_CODE = re.compile(r"^[0-9A-Z]{12}$")
_KEY = re.compile(r"^[a-z0-9_]{1,40}$")


def validate_item(item: CatalogueItem) -> CatalogueItem:
    """Check an item's rules; raise InvalidInput naming every field at fault, else return it."""
    errors: list[FieldError] = []

    def bad(field: str, message: str, message_en: str) -> None:
        errors.append(FieldError(field, message, message_en))

    if not _CODE.match(item.code):
        bad("code", "基本编码应为12位数字或大写字母", "code must be 12 digits or capital letters")
    if not item.name.strip():
        bad("name", "事项名称不能为空", "name is required")
    elif len(item.name) > 100:
        bad("name", "事项名称不能超过100个字", "name is longer than 100 characters")
    if not item.department.strip():
        bad("department", "实施主体不能为空", "department is required")
    if item.item_type not in ITEM_TYPES:
        bad("item_type", f"未知的事项类型代码: {item.item_type}", "unknown item type")
    unknown_objects = [o for o in item.service_objects if o not in SERVICE_OBJECTS]
    if unknown_objects or not item.service_objects:
        bad("service_objects", "服务对象代码不正确", "unknown or missing service objects")
    if not item.modes:
        bad("modes", "至少选择一种办理方式", "choose at least one mode")
    if len(set(item.modes)) != len(item.modes):
        bad("modes", "办理方式重复", "a mode is listed twice")
    if item.door_to_door_for and Mode.DOOR_TO_DOOR not in item.modes:
        bad(
            "door_to_door_for",
            "未开通上门办的事项不能设置上门服务对象",
            "door-to-door is not an allowed mode",
        )
    if item.promised_limit_days < 0:
        bad("promised_limit_days", "承诺时限不能为负数", "promised limit is negative")
    if item.legal_limit_days is not None:
        if item.legal_limit_days < 0:
            bad("legal_limit_days", "法定时限不能为负数", "legal limit is negative")
        elif item.promised_limit_days > item.legal_limit_days:
            bad(
                "promised_limit_days",
                f"承诺时限({item.promised_limit_days}个工作日)不能长于法定时限({item.legal_limit_days}个工作日)",
                "promised limit is longer than the legal limit",
            )
    if item.case_type is CaseType.IMMEDIATE and item.promised_limit_days != 0:
        bad(
            "promised_limit_days",
            "即办件的承诺时限应为0",
            "an immediate item has a promised limit of 0",
        )
    if item.case_type is CaseType.PROMISED and item.promised_limit_days == 0:
        bad(
            "promised_limit_days",
            "承诺件须填写承诺时限(工作日)",
            "a promised item needs a promised limit",
        )
    if item.visits_needed < 0:
        bad("visits_needed", "到现场次数不能为负数", "visits needed is negative")
    if item.fee and not item.fee_basis.strip():
        bad("fee_basis", "收费事项须填写收费依据", "a fee needs its basis")
    errors.extend(_material_errors(item.materials))
    if errors:
        raise InvalidInput(errors)
    return item


def _material_errors(materials: tuple[Material, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    keys: set[str] = set()
    names: set[str] = set()
    for i, m in enumerate(materials):
        where = f"materials[{i}]"
        name = m.name.strip()
        if not name:
            errors.append(
                FieldError(f"{where}.name", "材料名称不能为空", "material name is required")
            )
        elif name in names:
            errors.append(FieldError(f"{where}.name", f"材料重复: {name}", "duplicate material"))
        names.add(name)
        if not _KEY.match(m.key):
            errors.append(
                FieldError(
                    f"{where}.key", "材料标识只能用小写字母、数字和下划线", "bad material key"
                )
            )
        elif m.key in keys:
            errors.append(
                FieldError(f"{where}.key", f"材料标识重复: {m.key}", "duplicate material key")
            )
        keys.add(m.key)
        if m.copies < 1:
            errors.append(FieldError(f"{where}.copies", "份数至少为1", "copies must be at least 1"))
        if m.may_follow:
            if not m.follow_days or m.follow_days < 1:
                errors.append(
                    FieldError(
                        f"{where}.follow_days",
                        "容缺材料须填写补交期限(工作日)",
                        "a material that may follow needs a deadline",
                    )
                )
            if not m.required:
                errors.append(
                    FieldError(
                        f"{where}.may_follow",
                        "只有必需材料才能承诺后补",
                        "only required materials may follow",
                    )
                )
        elif m.follow_days is not None:
            errors.append(
                FieldError(
                    f"{where}.follow_days",
                    "不允许容缺的材料不设补交期限",
                    "deadline set on a material that may not follow",
                )
            )
    return errors


def item_fingerprint(item: CatalogueItem) -> bytes:
    """Canonical bytes of an item, for telling whether it changed since the last publish."""
    return msgspec.json.encode(item, order="sorted")
