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
    # --- counter intake (窗口受理) ---
    "窗口受理": "Counter intake",
    "群众到中心窗口申请": "a citizen applying at the centre's counter",
    "第一步 · 选择事项": "Step 1 · Choose the service",
    "查找事项": "Find a service",
    "名称、编码或拼音首字母": "Name, code or pinyin initials",
    "查找": "Find",
    "办理事项": "Service",
    "下一步": "Next",
    "没有找到匹配的事项, 请换个关键词": "No service matches; try another word",
    "本中心还没有收到区里发布的事项目录, 请稍后再试。": (
        "The district's published catalogue has not reached this centre yet; try again later."
    ),
    "一次性告知书": "One-time notice",
    "预审未通过, 本次未受理、未保存。请打印告知书交给群众, 一次性补齐材料后再来办理。": (
        "Pre-review failed: nothing was accepted or saved. Print the notice for the citizen, "
        "who brings every missing material at once."
    ),
    "打印告知书": "Print the notice",
    "一 · 办理事项": "1 · Service",
    "目录版本": "catalogue version",
    "办理层级": "decided at",
    "即办": "immediate",
    "承诺": "promised in",
    "换一个事项": "Another service",
    "二 · 申请人": "2 · Applicant",
    "个人": "Person",
    "单位(组织)": "Organisation",
    "个人申请人": "Applicant (person)",
    "单位申请人": "Applicant (organisation)",
    "姓名": "Name",
    "公民身份号码 (18位)": "Resident ID number (18 characters)",
    "联系电话": "Phone",
    "住址": "Address",
    "单位名称": "Organisation name",
    "统一社会信用代码 (18位)": "Unified social credit code (18 characters)",
    "联系人": "Contact",
    "地址": "Address",
    "委托代理 (由他人代为申请)": "Representative (someone applies for the applicant)",
    "代理人姓名": "Representative's name",
    "代理人身份号码": "Representative's ID number",
    "代理人电话": "Representative's phone",
    "与申请人关系": "Relation to the applicant",
    "三 · 材料预审": "3 · Pre-review of materials",
    "核验原件后选择每项材料的情况; 可承诺后补的材料约定补交期限。": (
        "Check the originals and mark each material; agree a deadline for those that may follow."
    ),
    "必需": "Required",
    "情况": "Status",
    "补交期限": "Deadline",
    "份": "copies",
    "是": "yes",
    "否": "no",
    "已提供": "Provided",
    "缺少": "Missing",
    "承诺后补": "To follow on commitment",
    "个工作日内": "working days",
    "最晚": "latest",
    "于": "by",
    "前": "",
    "四 · 办理方式": "4 · How it is served",
    "推荐": "suggested",
    "改选原因 (选择非推荐方式时填写)": "Why another mode (when not the suggested one)",
    "填好申请人和材料后点“预审”, 系统会列出可选的办理方式和理由。": (
        "Fill in the applicant and materials, then Pre-review: the modes and reasons appear."
    ),
    "提醒: 该申请人已有本事项的在办件": "Note: this applicant already has an open case of it",
    "确认仍要再次申请": "Apply again anyway",
    "预审": "Pre-review",
    "提交受理": "Accept the case",
    "受理回执": "Receipt",
    "查看办件": "Open the case",
    "打印回执": "Print the receipt",
    "继续受理": "Next citizen",
    "受理单位": "Received by",
    "预计办结": "Expected completion",
    "当场办结": "at once",
    "告知承诺书": "Commitment letter",
    "本人承诺在下列期限内补交材料; 逾期未补交的, 受理单位可依法作出不予许可或撤销的决定。": (
        "I undertake to bring these materials by the dates below; otherwise the application "
        "may be refused or the decision revoked as the law provides."
    ),
    "承诺人签名": "Signature",
    "日期": "Date",
    "预计办结日期自受理起按工作日计算, 以受理通知为准。凭办件编号和联系电话可查询办理进度。": (
        "The expected date counts working days from acceptance; the acceptance notice is "
        "binding. Track the case with its number and your phone."
    ),
    # --- end of counter intake ---
    # Case actions, documents and overdue commitments (issue 5 items 4 and 7).
    "办理单位": "Handled by",
    "中止计时": "Clock paused",
    "办结日期": "Completed",
    "不予受理（办理）": "Refused",
    "已移交": "Transferred",
    "关联办件": "Linked case",
    "已逾期": "overdue",
    "文书": "Documents",
    "结果送达": "Result handed over",
    "待处理的冲突": "Conflicts to resolve",
    "以下事件经同步到达时与办件状态不符, 已保留但未生效。请核实后说明处理情况。": (
        "Events that arrived by sync in conflict: kept, not applied. Check, then say how."
    ),
    "处理说明": "How it was resolved",
    "标记为已处理": "Mark as resolved",
    "办理": "Actions",
    "受理": "Accept",
    "受理后按事项承诺时限计算办结日期": "The due date counts from acceptance by the promised limit",
    "个工作日": "working days",
    "备注": "Note",
    "退回补正（一次性告知）": "Return with a one-time notice",
    "一次列明所缺的全部材料; 退回后停止计时": "List every missing material; the clock stops",
    "材料清单中缺少的": "Missing from the checklist",
    "其他需补正的材料（每行一项, 可写“名称：说明”）": "Other materials, one per line (name: note)",
    "退回原因": "Reason",
    "退回并出具一次性告知书": "Return and issue the notice",
    "收到材料": "Materials received",
    "收到的材料": "Received",
    "交材料人（如村代办员）": "Handed over by (e.g. the village agent)",
    "记录收到材料": "Record materials",
    "承诺材料补交": "Promised materials arrived",
    "已补交的承诺材料": "Arrived",
    "期限": "due",
    "记录补交": "Record",
    "分派承办人": "Assign",
    "改派承办人": "Reassign",
    "分派": "Assign",
    "法定情形": "Legal ground",
    "说明": "Note",
    "恢复计时": "Resume the clock",
    "办结": "Complete",
    "办理结果": "Result",
    "送达方式": "Delivery",
    "交给": "Handed to",
    "签收人": "Received by",
    "记录送达": "Record hand-over",
    "上报区级办理": "Escalate to the district",
    "上报区级政务服务中心": "Escalate to the district centre",
    "移交其他镇街": "Transfer to another township",
    "移交给（镇街代码）": "To township (code)",
    "移交原因": "Reason",
    "移交": "Transfer",
    "理由（将写入通知书）": "Reason (printed on the notice)",
    "打印": "Print",
    "逾期未补交的承诺材料": "Overdue promised materials",
    "截至": "As of",
    "请村代办员提醒申请人尽快补交": "Village agents: please remind the applicants",
    "没有逾期的承诺材料。": "No promised material is overdue.",
    "电话": "Phone",
    "逾期天数": "Days overdue",
    "返回办件": "Back to the case",
    # --- door-to-door dispatch: the visit calendar, a case's visits, route sheets ---
    "上午": "Morning",
    "下午": "Afternoon",
    "上门服务": "Home visits",
    "上门服务日程": "Home-visit calendar",
    "待确认的上门申请": "Visit requests to confirm",
    "申请时段": "Requested period",
    "今天": "Today",
    "只列工作日; 勾选表示该时段提供上门服务。": (
        "Working days only; a tick offers that period for home visits."
    ),
    "工作人员": "Staff",
    "路线单": "Route sheet",
    "空闲": "free",
    "不值班": "off",
    "保存上门值班": "Save availability",
    "上门结果": "Outcome",
    "记录上门结果": "Record the outcome",
    "取消原因": "Reason for cancelling",
    "取消上门": "Cancel the visit",
    "安排或改期": "Schedule or move",
    "今后几个工作日都没有空闲的上门时段, 请先在日程中安排值班。": (
        "No free home-visit slot in the coming working days: offer some on the calendar first."
    ),
    "新安排一次上门": "A new visit",
    "改期": "Move",
    "空闲时段": "Free slots",
    "安排上门": "Schedule a visit",
    "时段": "Period",
    "上门人员": "Visiting staff",
    "尚未安排上门。": "No visit scheduled yet.",
    "上门路线单": "Home-visit route sheet",
    "这一天没有上门安排。": "No visit on this day.",
    "户": "households",
    "结果": "Outcome",
    "上门人员签字": "Signature of the visiting staff",
    # --- end of door-to-door dispatch ---
    # supervision
    "三色督办": "SLA supervision",
    "逾期承诺": "Overdue commitments",
    "红黄绿三色督办": "Three-colour supervision",
    "按承诺时限: 绿为正常, 黄为临近时限, 红为超期; 只计已受理、计时中的办件。": (
        "Against the promised limit: green on time, yellow near the limit, red overdue "
        "(district thresholds). Only accepted cases whose clock runs are counted."
    ),
    "在办": "Open",
    "已办结": "Completed",
    "超期办结": "Completed late",
    "其中超期": "of which late",
    "按承办人": "By staff member",
    "按事项": "By service",
    "超期办件": "Overdue cases",
    "暂无受理中的办件": "No accepted case yet",
    "只列出最早到期的": "Showing the earliest",
    "在收件箱查看全部": "see them all in the inbox",
    "没有超期办件。": "No case is overdue.",
    # 差评 follow-ups
    "差评回访": "Bad ratings",
    "差评回访整改": "Bad-rating follow-ups",
    "差评须回访、整改、再次评价后办结（匿名差评从整改开始）; 第一步设定期限, 默认评价后": (
        "Every bad rating is called back, fixed, rated again and closed (an anonymous one "
        "starts at the fix); the first step sets the deadline, by default"
    ),
    "待办结": "Open",
    "评价": "Ratings",
    "评价内容": "Comment",
    "评价日期": "Rated on",
    "已完成的步骤": "Steps done",
    "匿名": "anonymous",
    "非常满意": "Very satisfied",
    "满意": "Satisfied",
    "基本满意": "Fairly satisfied",
    "不满意": "Dissatisfied",
    "非常不满意": "Very dissatisfied",
    "回访": "Call back",
    "整改": "Fix",
    "再次评价": "Follow-up rating",
    "办结回访": "Close",
    "已办结回访": "Follow-up closed",
    "尚未开始": "not started",
    "默认": "default",
    "逾期办结": "closed late",
    "没有符合条件的差评。": "No bad rating matches.",
    "差评待回访整改": "bad rating to follow up",
    "步骤": "Step",
    "按“回访→整改→再次评价→办结回访”的顺序; 匿名差评从整改开始。": (
        "In order: call back → fix → follow-up rating → close; an anonymous one starts at the fix."
    ),
    "情况说明": "What happened",
    "再次评价（仅“再次评价”填写）": "Follow-up rating (with that step only)",
    "整改期限（第一步设定, 留空按默认）": "Deadline (first step; empty for the default)",
    "记录": "Record",
    # --- end of 差评 follow-ups
    # --- video desk (视频办) ---
    "视频办": "Video desk",
    "可接听视频": "Available for video",
    "暂不接听": "Go unavailable",
    "暂不接听视频": "Not taking video calls",
    "设为可接听": "Go available",
    "在线接听人员": "Staff available",
    "来电": "Incoming calls",
    "视频办件": "Video cases",
    "没有在办的视频办件。": "No open video case.",
    "暂无来电。": "No incoming call.",
    "接听": "Accept",
    "回到通话": "Back to the call",
    "视频通话": "Video call",
    "等待接听": "Waiting",
    "连接中": "Connecting",
    "通话中": "In call",
    "已结束": "Ended",
    "失败": "Failed",
    "结束通话并记录结果": "End the call and record the outcome",
    "已办理": "Served",
    "需帮代办跟进": "Follow-up by agency",
    "需上门跟进": "Follow-up by a home visit",
    "未能完成": "Failed",
    "结束通话": "End call",
    # --- end of the video desk
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
