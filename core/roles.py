"""Roles people hold, and the level of unit each role belongs to."""

from __future__ import annotations

import re
from enum import StrEnum

from core.errors import FieldError, InvalidInput

__all__ = ["Role", "validate_username", "validate_password", "check_role_level"]


class Role(StrEnum):
    """What an account may do, bound to one unit of the matching level."""

    DISTRICT_ADMIN = "district_admin"
    TOWNSHIP_HEAD = "township_head"
    TOWNSHIP_STAFF = "township_staff"
    VILLAGE_AGENT = "village_agent"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "district_admin": "区管理员",
            "township_head": "中心负责人",
            "township_staff": "镇街工作人员",
            "village_agent": "村代办员",
        }[self.value]

    @property
    def level(self) -> str:
        """The unit level (``core.hierarchy.Level`` value) an account of this role belongs to."""
        return {
            "district_admin": "district",
            "township_head": "township",
            "township_staff": "township",
            "village_agent": "village",
        }[self.value]


_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,39}$")


def validate_username(name: str) -> str:
    """Return a normalised login name or raise InvalidInput."""
    name = name.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidInput(
            FieldError(
                "username",
                "登录名为3-40位小写字母、数字、点、下划线或连字符",
                "3-40 of a-z 0-9 . _ -",
            )
        )
    return name


def validate_password(password: str) -> str:
    """Return the password if long enough to keep, else raise InvalidInput."""
    if len(password) < 8:
        raise InvalidInput(FieldError("password", "密码至少8位", "at least 8 characters"))
    if len(password) > 200:
        raise InvalidInput(FieldError("password", "密码不能超过200位", "at most 200 characters"))
    return password


def check_role_level(role: Role, unit_level: str) -> None:
    """Raise InvalidInput unless an account of ``role`` may belong to a unit of ``unit_level``."""
    if role.level != unit_level:
        raise InvalidInput(
            FieldError(
                "unit_code",
                f"{role.label}只能属于{_LEVEL_LABEL[role.level]}级单位",
                "unit level does not fit the role",
            )
        )


_LEVEL_LABEL = {"district": "区县", "township": "镇街", "village": "村(社区)"}
