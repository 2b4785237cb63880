"""Chinese first, English available: templates write Chinese and ``_()`` swaps in English."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context

__all__ = ["install", "language", "local_time", "EN", "DISTRICT_TZ"]

DISTRICT_TZ = ZoneInfo("Asia/Shanghai")

EN: dict[str, str] = {
    "三级四务 · 区级管理": "Sanji · District administration",
    "首页": "Home",
    "单位": "Units",
    "账号": "Accounts",
    "终端": "Kiosks",
    "事项目录": "Catalogue",
    "设置": "Settings",
    "通知": "Notices",
    "终端运行": "Kiosk fleet",
    "标准化": "Standardisation",
    "终端运行情况": "Kiosk fleet",
    "标准化报告": "Standardisation report",
    "办事情况": "Dashboard",
    "全区办事情况": "District dashboard",
    "受理登记自": "Opened from",
    "排名依据": "Rank by",
    "分组": "Group by",
    "至": "to",
    "镇街": "Township",
    "最近成功同步": "Last successful sync",
    "区里最近收到": "Last heard by the district",
    "待上传": "Waiting to upload",
    "被拒文档": "Refused documents",
    "时钟": "Clock",
    "目录版本": "Catalogue version",
    "长时间未联系": "Silent",
    "同步失败": "Sync failing",
    "镇街节点复制状态": "Township nodes' replications",
    "检查时间": "Checked at",
    "能否连接": "Reachable",
    "能连接": "Reachable",
    "无法连接": "Unreachable",
    "出错/全部复制": "Failing / all replications",
    "最近正常": "Last healthy",
    "详情": "Details",
    "群众通知": "Notices to citizens",
    "类型": "Kind",
    "时间": "Time",
    "手机号": "Phone",
    "预约码": "Booking code",
    "办件编号": "Case number",
    "内容": "Message",
    "发送时间": "Sent at",
    "登录": "Log in",
    "退出": "Log out",
    "登录名": "Login",
    "密码": "Password",
    "登录名或密码不正确, 或账号已停用": "Wrong login or password, or the account is disabled",
    "搜索": "Search",
    "筛选": "Filter",
    "全部": "All",
    "保存": "Save",
    "新增": "Add",
    "导入": "Import",
    "编辑": "Edit",
    "名称": "Name",
    "区划代码": "Division code",
    "层级": "Level",
    "上级": "Parent",
    "操作": "Actions",
    "角色": "Role",
    "姓名": "Name",
    "电话": "Phone",
    "状态": "Status",
    "启用": "Enable",
    "停用": "Disable",
    "已停用": "Disabled",
    "正常": "Active",
    "重置密码": "Reset password",
    "发放启用码": "Issue enrolment code",
    "吊销": "Revoke",
    "吊销原因": "Reason for revocation",
    "村(社区)": "Village",
    "备注": "Label",
    "启用码": "Enrolment code",
    "有效期至": "Valid until",
    "启用时间": "Enrolled at",
    "基本编码": "Code",
    "事项名称": "Item name",
    "服务类别": "Kind",
    "办理层级": "Handling level",
    "办理方式": "Modes",
    "承诺时限": "Promised limit",
    "法定时限": "Legal limit",
    "工作日": "working days",
    "发布目录": "Publish catalogue",
    "当前版本": "Current version",
    "未发布": "Not published",
    "新建事项": "New item",
    "已停办": "Retired",
    "停办": "Retire",
    "恢复": "Restore",
    "材料": "Materials",
    "模板": "Templates",
    "上传模板": "Upload template",
    "日历例外": "Calendar exceptions",
    "红黄绿阈值": "SLA thresholds",
    "日期": "Date",
    "工作日(调休上班)": "Working day (make-up)",
    "休息日": "Holiday",
    "说明": "Note",
    "删除": "Delete",
    "已录入全年安排的年份": "Years whose arrangement is entered",
    "提醒": "Alerts",
    "待写入文档库的变更": "Changes waiting for CouchDB",
    "出错了": "Something went wrong",
    "返回": "Back",
    "修改密码": "Change password",
    "原密码": "Current password",
    "新密码": "New password",
    "请先设置新密码": "Please set a new password first",
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


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored time in the district's time zone (naive values are UTC, as SQLite returns them)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(DISTRICT_TZ).strftime(fmt)


def install(engine: Any) -> None:
    """Register ``_()`` and the ``local`` time filter with the Jinja environment."""
    engine.engine.globals["_"] = _translate
    engine.engine.filters["local"] = local_time
