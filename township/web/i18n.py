"""Chinese first, English available: templates write Chinese and ``_()`` swaps in English;
filters name statuses, modes and colours in Chinese."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import pass_context

from core.cases import CHINA_TIME, EventKind
from core.catalogue import Mode
from core.fold import CaseStatus
from core.sla import Colour

__all__ = ["install", "EN"]

EN: dict[str, str] = {
    "三级四务 · 服务中心": "Sanji · Service centre",
    "镇街便民服务中心": "Township service centre",
    "区级政务服务中心": "District service centre",
    "收件箱": "Inbox",
    "登录": "Log in",
    "退出": "Log out",
    "登录名": "Login",
    "密码": "Password",
    "登录名或密码不正确, 或账号已停用": "Wrong login or password, or the account is disabled",
    "登录已超时, 请重新登录": "Your session timed out, please log in again",
    "使用区级管理员为本中心工作人员开设的账号。": "Use the account the district opened for you.",
    "搜索": "Search",
    "办件编号、姓名或电话": "Case number, name or phone",
    "类别": "Kind",
    "办理方式": "Mode",
    "状态": "Status",
    "村(社区)": "Village",
    "承办人": "Assignee",
    "未分派": "Unassigned",
    "全部": "All",
    "筛选": "Filter",
    "清除": "Clear",
    "共": "",
    "件": "cases",
    "第": "page",
    "页": "",
    "办件编号": "Case number",
    "事项": "Service",
    "申请人": "Applicant",
    "窗口": "Counter",
    "视为受理": "deemed accepted",
    "有冲突": "conflict",
    "办结时限": "Due",
    "暂定": "provisional",
    "预计": "expected",
    "三色": "SLA",
    "上一页": "Previous",
    "下一页": "Next",
    "没有符合条件的办件。": "No case matches.",
    "出错了": "Something went wrong",
    "返回": "Back",
    "有新的办件或变化, 已刷新": "New or changed cases: the list is up to date",
    "委托代理人": "Representative",
    "来源": "Opened at",
    "提交日期": "Submitted",
    "受理日期": "Accepted",
    "申请材料": "Materials",
    "材料": "Material",
    "承诺补交期限": "Promised by",
    "一次性告知": "One-time notice",
    "办理过程": "Timeline",
    "时间": "Time",
    "环节": "Step",
    "经办": "By",
    "之后状态": "Status after",
    "冲突": "conflict",
    "无效": "not applied",
}


def _english(context: Any) -> bool:
    request = context.get("request")
    return request is not None and request.cookies.get("lang") == "en"


@pass_context
def _translate(context: Any, text: str) -> str:
    return EN.get(text, text) if _english(context) else text


def _label(kind: Any) -> Any:
    def label(value: Any) -> str:
        try:
            return str(kind(value).label)
        except ValueError:
            return str(value)

    return label


def install(engine: Any) -> None:
    """Register ``_()`` and the label filters with the Jinja environment."""
    engine.engine.globals["_"] = _translate
    engine.engine.filters["status_label"] = _label(CaseStatus)
    engine.engine.filters["mode_label"] = _label(Mode)
    engine.engine.filters["colour_label"] = _label(Colour)
    engine.engine.filters["event_label"] = _label(EventKind)
    engine.engine.filters["local"] = local_time


def local_time(value: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An ISO time (naive: UTC) in China time, or an empty string."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA_TIME).strftime(fmt)
