"""The district's supervision pages (issue 8): the kiosk fleet and the standardisation report.

Both read the district read model (``central.services.district_model`` keeps it); the report
also reads the newest published catalogue from CouchDB.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromQuery
from litestar.response import Template

from central.services import hierarchy
from central.services.exports import FORMATS, Cell, Table
from central.services.fleet import STATES, FleetFilter, FleetKiosk, fleet
from central.services.node_health import node_health
from central.services.published import current_catalogue
from central.services.standards import (
    StandardsFilter,
    StandardsRow,
    StandardsTotal,
    standards_report,
)
from central.web.auth import admin_guard
from central.web.dashboard import download
from central.web.deps import in_db
from central.web.i18n import DISTRICT_TZ
from central.web.ui import page
from core.catalogue import Kind
from sync.errors import SyncError

__all__ = ["handlers"]


def _townships(session: Any) -> list[tuple[str, str]]:
    return [(u.code, u.name) for u in hierarchy.list_units(session, level="township", limit=1000)]


def _fleet_context(session: Any, wanted: FleetFilter) -> dict[str, Any]:
    return {
        "kiosks": fleet(session, wanted),
        "townships": _townships(session),
        "nodes": node_health(session),
    }


def _local(value: datetime | None) -> str | None:
    return value.astimezone(DISTRICT_TZ).strftime("%Y-%m-%d %H:%M") if value else None


def fleet_table(kiosks: list[FleetKiosk]) -> Table:
    """The fleet page's table for export."""
    headers = ["村(社区)代码", "村(社区)", "镇街", "登记号", "终端编号", "最近成功同步",
               "区里最近收到", "待上传", "被拒文档", "时钟偏差(秒)", "时钟", "持有目录版本",
               "当前目录版本", "目录落后", "长时间未联系", "同步失败", "已吊销",
               "最近错误"]  # fmt: skip
    rows: list[list[Cell]] = [
        [k.village, k.village_name, k.township_name, k.registration, k.instance,
         _local(k.last_success), _local(k.last_heard), k.waiting if k.has_status else None,
         k.refused if k.has_status else None, k.skew_seconds, k.skew_text, k.catalogue_version,
         k.current_version, "是" if k.stale else "", "是" if k.silent else "",
         "是" if k.failing else "", "是" if k.revoked else "", k.last_error]
        for k in kiosks
    ]  # fmt: skip
    return Table("终端运行情况", headers, rows)


def standards_tables(rows: list[StandardsRow], total: StandardsTotal) -> list[Table]:
    """The standardisation report's tables for export: per item, and the total."""
    per_item = Table(
        "标准化报告",
        ["编码", "事项名称", "服务类别", "实施主体", "办件类型", "法定时限", "承诺时限",
         "压缩天数", "已办结", "实际平均用时"],
        [[r.code, r.name, r.kind_label, r.department, r.case_type_label, r.legal_days,
          r.promised_days, r.saved_days, r.completed, r.average_days] for r in rows],
    )  # fmt: skip
    compression = None if total.compression is None else round(100 * total.compression, 1)
    summary = Table(
        "合计",
        ["事项", "有法定时限", "法定时限合计", "承诺时限合计", "压缩天数", "压缩比例(%)",
         "已办结", "实际平均用时"],
        [[total.items, total.items_with_legal, total.legal_days, total.promised_days,
          total.saved_days, compression, total.completed, total.average_days]],
    )  # fmt: skip
    return [per_item, summary]


def _hours(text: str, default: float) -> float:
    try:
        value = float(text)
    except ValueError:
        return default
    return value if 0 < value <= 24 * 365 else default


@get("/fleet", guards=[admin_guard])
async def fleet_page(
    request: Request,  # type: ignore[type-arg]
    township: FromQuery[str] = "",
    village: FromQuery[str] = "",
    q: FromQuery[str] = "",
    show: FromQuery[str] = "",
    silent_hours: FromQuery[str] = "",
    format: FromQuery[str] = "",
) -> Template | Response[bytes]:
    """Every enrolled kiosk: village, last sync, waiting and refused documents, clock, catalogue
    version, revoked or not; silent and failing ones highlighted; then the township nodes'
    replication checks. ``?state=`` is taken for ``show`` (the dashboard's alerts link so)."""
    settings = request.app.state.settings
    show = show or request.query_params.get("state", "")
    wanted = FleetFilter(
        township=township[:12],
        village=village[:12],
        q=q[:40],
        state=show if show in STATES else "",
        silent_hours=_hours(silent_hours, settings.kiosk_silent_hours),
        skew_minutes=settings.kiosk_skew_minutes,
    )
    context = await in_db(request, _fleet_context, wanted)
    if format in FORMATS:
        return download([fleet_table(context["kiosks"])], format, "fleet")
    return page(request, "fleet.html", wanted=wanted, STATES=STATES, **context)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _standards_context(session: Any, items: Any, wanted: StandardsFilter) -> dict[str, Any]:
    rows, total = standards_report(session, items, wanted)
    return {"rows": rows, "total": total}


@get("/standards", guards=[admin_guard])
async def standards_page(
    request: Request,  # type: ignore[type-arg]
    kind: FromQuery[str] = "",
    q: FromQuery[str] = "",
    completed_from: FromQuery[str] = "",
    completed_to: FromQuery[str] = "",
    format: FromQuery[str] = "",
) -> Template | Response[bytes]:
    """Legal vs promised limits per item and in total, with the actual average days taken."""
    wanted = StandardsFilter(
        kind=kind if kind in {k.value for k in Kind} else "",
        q=q[:40],
        completed_from=_day(completed_from),
        completed_to=_day(completed_to),
    )
    couch = request.app.state.couch
    try:
        published = await asyncio.to_thread(lambda: current_catalogue(couch.server()))
    except SyncError:
        published, reachable = None, False
    else:
        reachable = True
    items = published.items if published is not None else ()
    context = await in_db(request, _standards_context, items, wanted)
    if format in FORMATS:
        return download(standards_tables(context["rows"], context["total"]), format, "standards")
    return page(
        request,
        "standards.html",
        wanted=wanted,
        published=published,
        couch_reachable=reachable,
        **context,
    )


handlers = [fleet_page, standards_page]
