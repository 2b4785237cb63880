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
    "上传": "Uploading",
    "下载": "Downloading",
    "详情": "Details",
    "查看": "View",
    "同步详情": "Sync details",
    "网络": "Link",
    "上次成功同步": "Last successful sync",
    "上次尝试": "Last attempt",
    "上次上传 / 下载": "Last sent / received",
    "份": "documents",
    "镇街服务中心": "Township centre",
    "联网时每隔几分钟自动同步; 断网后会自动重试, 网络恢复后立即同步。": (
        "Syncs every few minutes when online; retries after a failure and syncs as soon as the "
        "link returns."
    ),
    "镇街拒收的文档": "Documents the township refused",
    "以下文档未被镇街服务中心接收。它们仍完整保存在本机, 但不会再自动上传; 请告诉镇街工作人员。": (
        "The township centre did not accept these documents. They are kept whole on this PC "
        "but will not be sent again by themselves; tell the township staff the reason."
    ),
    "原因": "Reason",
    "时间": "Time",
    "文档": "Document",
    "已知悉, 清除记录": "Seen, clear the list",
    "没有被拒收的文档。": "No document was refused.",
    "镇街服务中心拒收了本机的文档": "The township centre refused documents of this PC",
    "份 (仍保存在本机)。": "(still kept on this PC).",
    "正在启用并下载本村资料": "Enrolling and downloading the village's data",
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
    "就近办 · 当场办结": "On the spot · complete now",
    "确认办结": "Complete the case",
    "镇街退回补正告知": "Returned by the township: one-time notice",
    "补正后重新提交": "Resubmit with the missing materials",
    "群众评价 (好差评)": "Citizen's rating",
    "提交评价": "Save the rating",
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
