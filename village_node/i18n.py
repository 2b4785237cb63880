"""Chinese first, English available: templates write Chinese and ``_()`` swaps in English."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context

__all__ = ["install", "language", "local_time", "EN", "LOCAL_TZ"]

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

EN: dict[str, str] = {
    "三级四务 · 村便民服务站": "Sanji · Village service kiosk",
    "事项目录": "Catalogue",
    "办件": "Cases",
    "新建办件": "New case",
    "登录": "Log in",
    "退出": "Log out",
    "登录名": "Login",
    "密码": "Password",
    "登录名或密码不正确, 或账号已停用": "Wrong login or password, or the account is disabled",
    "搜索": "Search",
    "全部": "All",
    "同步": "Sync",
    "正在同步": "Syncing",
    "在线": "Online",
    "离线": "Offline",
    "秒后重试": "s until retry",
    "已吊销": "Revoked",
    "未同步": "Not synced yet",
    "上次同步": "Last sync",
    "待上传": "Waiting to go up",
    "目录版本": "Catalogue version",
    "终端启用": "Kiosk enrolment",
    "镇街服务中心地址": "Township centre address",
    "村(社区)代码": "Village code",
    "启用码": "Enrolment code",
    "启用": "Enrol",
    "办理指南": "Service guide",
    "申请材料": "Materials",
    "模板": "Templates",
    "办理层级": "Handling level",
    "办理方式": "Modes",
    "承诺时限": "Promised limit",
    "法定时限": "Legal limit",
    "收费": "Fee",
    "不收费": "Free",
    "返回": "Back",
    "出错了": "Something went wrong",
    "登录已超时, 请重新登录": "Your session timed out, please log in again",
}


def language(request: Any) -> str:
    """``en`` when the user chose English, else ``zh``."""
    return "en" if request.cookies.get("lang") == "en" else "zh"


@pass_context
def _translate(context: Any, text: str) -> str:
    request = context.get("request")
    if request is not None and language(request) == "en":
        return EN.get(text, text)
    return text


def local_time(value: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An ISO time (naive: UTC) in local time, or an empty string."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LOCAL_TZ).strftime(fmt)


def install(engine: Any) -> None:
    """Register ``_()`` and the ``local`` time filter with the Jinja environment."""
    engine.engine.globals["_"] = _translate
    engine.engine.filters["local"] = local_time
