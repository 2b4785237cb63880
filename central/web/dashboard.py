"""The district's dashboard (issue 8 items 2-3, 7): the figures over a period grouped by
township, village, kind, mode, level, staff member, service or department, each chart beside its
table with a total row, the ranking of the hardest units, the cases behind every figure, and
every table as CSV or XLSX (``?format=csv|xlsx``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template
from markupsafe import Markup
from sqlalchemy import select

from central.db.models import Unit
from central.services import hierarchy
from central.services.alerts import alerts
from central.services.dashboard import (
    FIGURES,
    GROUPS,
    RANKING_FIGURES,
    RANKINGS,
    FigureCase,
    Figures,
    Period,
    figure_cases,
    figures,
    group_label,
    ranking,
)
from central.services.exports import FORMATS, Cell, Table, export
from central.web.auth import admin_guard
from central.web.charts import Series, bar_chart
from central.web.deps import in_db
from central.web.i18n import DISTRICT_TZ
from central.web.ui import page
from core.cases import RATING_LABELS

__all__ = ["handlers", "download"]

GREEN, YELLOW, RED, BLUE, GREY, TEAL, ORANGE = (
    "#2e9d57",
    "#e0a800",
    "#d64545",
    "#3b6fd8",
    "#9aa3ad",
    "#1f9a9a",
    "#e07b39",
)
CASE_LIMIT = 2000
CHART_ROWS = 30
"""A chart shows at most this many groups (those with the most cases); its table shows all."""


def district_today() -> date:
    """Today in the district (China Standard Time)."""
    return datetime.now(DISTRICT_TZ).date()


def _day(text: str, default: date) -> date:
    try:
        return date.fromisoformat(text) if text else default
    except ValueError:
        return default


def period_of(start: str, end: str, today: date) -> Period:
    """The period asked for; by default this month up to its end; swapped if given backwards."""
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    low, high = _day(start, first), _day(end, last)
    return Period(min(low, high), max(low, high))


def download(tables: Sequence[Table], fmt: str, name: str) -> Response[bytes]:
    """The tables as an attachment in ``fmt`` (``csv`` or ``xlsx``), named ``name.<fmt>``."""
    return Response(
        content=export(tables, fmt),
        media_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


# --- the page's sections: a table, the figure each column links to, and its chart ------------


@dataclass(frozen=True)
class Breakdown:
    """The groups' figures with their names, and where each row's cases are."""

    group: str
    township: str
    rows: Sequence[Figures]
    labels: Sequence[str]

    def scope(self, row: Figures | None) -> str:
        """The query string naming a row's cases (None: the total row, every group)."""
        if row is None:
            return urlencode({"township": self.township})
        if self.group == "township":
            return urlencode({"township": row.key})
        return urlencode({"township": self.township, "group": self.group, "key": row.key})


@dataclass(frozen=True)
class Section:
    """A table of the dashboard with its chart; ``links`` names the figure behind each column,
    ``scopes`` the cases of each row (the query string of /dashboard/cases)."""

    key: str
    table: Table
    keys: Sequence[str]
    scopes: Sequence[str]
    links: Sequence[str | None]
    chart: Markup | None = None


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _one(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _charted(breakdown: Breakdown) -> tuple[list[str], list[Figures], str]:
    """The rows a chart shows (the most cases first when there are too many) and a title note."""
    pairs = list(zip(breakdown.labels, breakdown.rows, strict=True))
    if len(pairs) <= CHART_ROWS:
        return [p[0] for p in pairs], [p[1] for p in pairs], ""
    pairs = sorted(pairs, key=lambda p: -p[1].cases)[:CHART_ROWS]
    return [p[0] for p in pairs], [p[1] for p in pairs], f" (办件最多的 {CHART_ROWS} 个)"


Value = Callable[[Figures], Cell]
Number = Callable[[Figures], float | None]


def _rating(level: int) -> Callable[[Figures], int]:
    return lambda f: f.ratings[level - 1]


@dataclass(frozen=True)
class Column:
    """A table column: its header, its value, and the figure whose cases its numbers link to."""

    header: str
    value: Value
    figure: str | None = None


@dataclass(frozen=True)
class Chart:
    """A section's chart: bars of (name, colour, value) per group."""

    title: str
    bars: Sequence[tuple[str, str, Number]]
    stacked: bool = False
    unit: str = ""
    maximum: float | None = None


SECTIONS: Sequence[tuple[str, str, Sequence[Column], Chart]] = (
    ("volume", "办件量", [
        Column("办件", lambda f: f.cases, "cases"),
        Column("已办结", lambda f: f.completed, "completed"),
        Column("超期办结", lambda f: f.completed_late, "completed_late"),
        Column("到期日待定", lambda f: f.provisional, "provisional"),
    ], Chart("办件量", [("办件", BLUE, lambda f: f.cases)])),
    ("colours", "三色预警(今日)", [
        Column("绿灯", lambda f: f.green, "green"),
        Column("黄灯", lambda f: f.yellow, "yellow"),
        Column("红灯", lambda f: f.red, "red"),
        Column("超期(红灯+超期办结)", lambda f: f.overdue, "overdue"),
    ], Chart("三色预警", [("绿灯", GREEN, lambda f: f.green), ("黄灯", YELLOW, lambda f: f.yellow),
                          ("红灯", RED, lambda f: f.red)], stacked=True)),
    ("nearby", "就近办与无需跑腿", [
        Column("办件", lambda f: f.cases, "cases"),
        Column("就近办理", lambda f: f.nearby, "nearby"),
        Column("就近办理占比(%)", lambda f: _pct(f.nearby, f.cases)),
        Column("无需跑腿", lambda f: f.no_trip, "no_trip"),
        Column("无需跑腿占比(%)", lambda f: _pct(f.no_trip, f.cases)),
    ], Chart("就近办与无需跑腿占比", [("就近办理", BLUE, lambda f: _pct(f.nearby, f.cases)),
                                  ("无需跑腿", TEAL, lambda f: _pct(f.no_trip, f.cases))],
             unit="%", maximum=100)),
    ("days", "实际用时与承诺、法定时限", [
        Column("已办结", lambda f: f.completed, "completed"),
        Column("平均用时(工作日)", lambda f: _one(f.average_days)),
        Column("平均承诺时限(工作日)", lambda f: _one(f.average_promised)),
        Column("平均法定时限(工作日)", lambda f: _one(f.average_legal)),
    ], Chart("平均用时与承诺、法定时限", [("实际用时", BLUE, lambda f: _one(f.average_days)),
                                      ("承诺时限", GREY, lambda f: _one(f.average_promised)),
                                      ("法定时限", ORANGE, lambda f: _one(f.average_legal))],
             unit="天")),
    ("ratings", "评价分布", [
        Column("已评价", lambda f: f.rated, "rated"),
        *(Column(RATING_LABELS[n], _rating(n), f"rating_{n}") for n in range(5, 0, -1)),
        Column("差评率(%)", lambda f: _pct(f.bad, f.rated)),
    ], Chart("评价分布", [(RATING_LABELS[n], colour, _rating(n)) for n, colour in
                          ((5, GREEN), (4, TEAL), (3, GREY), (2, ORANGE), (1, RED))],
             stacked=True)),
    ("follow_up", "差评回访", [
        Column("差评", lambda f: f.bad, "bad"),
        Column("回访未结", lambda f: f.follow_up_open, "follow_up_open"),
        Column("其中逾期", lambda f: f.follow_up_late, "follow_up_late"),
        Column("回访已结", lambda f: f.follow_up_closed, "follow_up_closed"),
    ], Chart("差评回访", [("未结(未逾期)", YELLOW, lambda f: f.follow_up_open - f.follow_up_late),
                          ("逾期", RED, lambda f: f.follow_up_late),
                          ("已结", GREEN, lambda f: f.follow_up_closed)], stacked=True)),
)  # fmt: skip
"""The dashboard's sections: key, title, table columns and chart."""


def _sections(breakdown: Breakdown) -> list[Section]:
    total = Figures.total(list(breakdown.rows))
    rows: list[Figures | None] = [*breakdown.rows, None] if breakdown.rows else []
    names = [*breakdown.labels, total.name] if breakdown.rows else []
    labels, charted, note = _charted(breakdown)
    found = []
    for key, title, columns, chart in SECTIONS:
        cells = [
            [name, *(c.value(f if f is not None else total) for c in columns)]
            for name, f in zip(names, rows, strict=True)
        ]
        bars = [Series(n, colour, [value(f) for f in charted]) for n, colour, value in chart.bars]
        found.append(Section(
            key,
            Table(title, [GROUPS[breakdown.group], *(c.header for c in columns)], cells),
            ["" if f is None else f.key for f in rows],
            [breakdown.scope(f) for f in rows],
            [None, *(c.figure for c in columns)],
            bar_chart(chart.title + note, labels, bars, stacked=chart.stacked, unit=chart.unit,
                      maximum=chart.maximum),
        ))  # fmt: skip
    return found


def _ranking_section(breakdown: Breakdown, by: str) -> Section:
    order = ranking(list(breakdown.rows), by)
    label = dict(zip((f.key for f in breakdown.rows), breakdown.labels, strict=True))
    part, whole = {
        "bad_rate": (("差评", "bad"), ("已评价", "rated")),
        "overdue_rate": (("超期", "overdue"), ("办件", "cases")),
        "returns_per_case": (("退回次数", "returns"), ("办件", "cases")),
    }[by]
    percent = by != "returns_per_case"
    headers = ["名次", GROUPS[breakdown.group], f"{RANKINGS[by]}(%)" if percent else RANKINGS[by],
               part[0], whole[0]]  # fmt: skip
    rows: list[list[Cell]] = []
    for n, f in enumerate(order, start=1):
        value = getattr(f, by)
        shown = round(100 * value, 1) if percent else round(value, 2)
        rows.append([n, label[f.key], shown, getattr(f, part[1]), getattr(f, whole[1])])
    return Section(
        "ranking",
        Table(f"最难办事排名 · 按{GROUPS[breakdown.group]} · {RANKINGS[by]}", headers, rows),
        [f.key for f in order],
        [breakdown.scope(f) for f in order],
        [None, None, None, RANKING_FIGURES[by], whole[1]],
    )


def _figures_table(breakdown: Breakdown) -> Table:
    heading = GROUPS[breakdown.group]
    headers = [f"{heading}代码", heading, "办件", "绿灯", "黄灯", "红灯", "已办结", "超期办结",
               "超期", "就近办理", "无需跑腿", "退回次数", "到期日待定", "平均用时",
               "平均承诺时限", "平均法定时限", "已评价",
               *(RATING_LABELS[n] for n in range(5, 0, -1)), "差评", "差评率", "超期率",
               "每件退回次数", "回访未结", "回访逾期", "回访已结"]  # fmt: skip
    rows: list[list[Cell]] = [
        [f.key, name, f.cases, f.green, f.yellow, f.red, f.completed, f.completed_late,
         f.overdue, f.nearby, f.no_trip, f.returns, f.provisional, f.average_days,
         f.average_promised, f.average_legal, f.rated, *reversed(f.ratings), f.bad, f.bad_rate,
         f.overdue_rate, f.returns_per_case, f.follow_up_open, f.follow_up_late,
         f.follow_up_closed]
        for f, name in zip(breakdown.rows, breakdown.labels, strict=True)
    ]  # fmt: skip
    return Table(f"各{heading}全部指标", headers, rows)


def _townships(session: Any) -> dict[str, str]:
    return {u.code: u.name for u in hierarchy.list_units(session, level="township", limit=1000)}


def _names(session: Any, codes: set[str]) -> dict[str, str]:
    """The names of every township and of the units ``codes``."""
    names = _townships(session)
    if codes - names.keys():
        wanted = select(Unit.code, Unit.name).where(Unit.code.in_(codes - names.keys()))
        names.update({code: name for code, name in session.execute(wanted)})
    return names


def _dashboard(
    session: Any, period: Period, today: date, group: str, township: str, silent_hours: float
) -> dict[str, Any]:
    rows = figures(session, period, today, group, township)
    return {
        "rows": rows,
        "townships": _townships(session),
        "names": _names(session, {f.key for f in rows if f.key and group == "village"}),
        "alerts": alerts(session, today, datetime.now(UTC), silent_hours),
    }


@get("/dashboard", guards=[admin_guard])
async def dashboard_page(
    request: Request,  # type: ignore[type-arg]
    start: Annotated[str, QueryParameter(name="from")] = "",
    end: Annotated[str, QueryParameter(name="to")] = "",
    township: FromQuery[str] = "",
    group: FromQuery[str] = "township",
    by: FromQuery[str] = "bad_rate",
    format: FromQuery[str] = "",
) -> Template | Response[bytes]:
    """The figures over a period by one grouping, each chart beside its table, and the ranking."""
    today = district_today()
    period = period_of(start, end, today)
    by = by if by in RANKINGS else "bad_rate"
    group = group if group in GROUPS else "township"
    township = township[:12]
    silent_hours = request.app.state.settings.kiosk_silent_hours
    context = await in_db(request, _dashboard, period, today, group, township, silent_hours)
    names: dict[str, str] = context["names"]
    rows: list[Figures] = context["rows"]
    breakdown = Breakdown(
        group, township, rows, [group_label(group, f.key, f.name, names) for f in rows]
    )
    sections = _sections(breakdown)
    rank = _ranking_section(breakdown, by)
    if format in FORMATS:
        tables = [_figures_table(breakdown), *(s.table for s in sections), rank.table]
        return download(tables, format, f"dashboard-{group}-{period.start}-{period.end}")
    return page(
        request,
        "dashboard.html",
        period=period,
        today=today,
        township=township,
        townships=sorted(context["townships"].items()),
        group=group,
        GROUPS=GROUPS,
        by=by,
        RANKINGS=RANKINGS,
        sections=sections,
        alerts=context["alerts"],
        rank=rank,
        total=sum(f.cases for f in rows),
    )


# --- the cases behind a figure ---------------------------------------------------------------


def _cases(session: Any, period: Period, today: date, scope: dict[str, str]) -> dict[str, Any]:
    cases = figure_cases(session, period, today, limit=CASE_LIMIT + 1, **scope)
    codes = {c.village for c in cases if c.village} | {c.township for c in cases}
    if scope["group"] == "village" and scope["key"]:
        codes.add(scope["key"])
    return {"cases": cases, "names": _names(session, codes)}


def _cases_table(cases: Sequence[FigureCase], names: dict[str, str], title: str) -> Table:
    headers = ["办件编号", "事项", "镇街", "村(社区)", "经办人", "状态", "受理登记时间", "到期日",
               "三色"]  # fmt: skip
    rows: list[list[Cell]] = [
        [c.case_number, c.item_name, names.get(c.township, c.township),
         names.get(c.village, c.village) if c.village else "镇街窗口",
         c.assignee_name or "未分派", c.status_label,
         c.opened_at.astimezone(DISTRICT_TZ).strftime("%Y-%m-%d %H:%M"),
         (f"{c.due_on}{' (待定)' if c.due_provisional else ''}" if c.due_on else None),
         c.colour_label]
        for c in cases
    ]  # fmt: skip
    return Table(title, headers, rows)


def _title(scope: dict[str, str], cases: Sequence[FigureCase], names: dict[str, str]) -> str:
    """ "静观镇 · 经办人: 李四 · 红灯": where, which group, which figure."""
    township, group, key = scope["township"], scope["group"], scope["key"]
    parts = [names.get(township, township) if township else "全区"]
    if group:
        first = cases[0] if cases else None
        shown = {"staff": first.assignee_name, "service": first.item_name} if first else {}
        parts.append(f"{GROUPS[group]}: {group_label(group, key, shown.get(group, ''), names)}")
    return " · ".join([*parts, FIGURES[scope["figure"]]])


@get("/dashboard/cases", guards=[admin_guard])
async def dashboard_cases(
    request: Request,  # type: ignore[type-arg]
    start: Annotated[str, QueryParameter(name="from")] = "",
    end: Annotated[str, QueryParameter(name="to")] = "",
    township: FromQuery[str] = "",
    group: FromQuery[str] = "",
    key: FromQuery[str] = "",
    figure: FromQuery[str] = "",
    format: FromQuery[str] = "",
) -> Template | Response[bytes]:
    """The cases counted in one figure over the period: of a township, of one group's row."""
    today = district_today()
    period = period_of(start, end, today)
    scope = {
        "township": township[:12],
        "group": group if group in GROUPS else "",
        "key": key[:200] if group in GROUPS else "",
        "figure": figure if figure in FIGURES else "cases",
    }
    context = await in_db(request, _cases, period, today, scope)
    cases: list[FigureCase] = context["cases"]
    more = len(cases) > CASE_LIMIT
    cases = cases[:CASE_LIMIT]
    names: dict[str, str] = context["names"]
    title = _title(scope, cases, names)
    table = _cases_table(cases, names, title)
    if format in FORMATS:
        name = "-".join(
            v for v in (scope["township"] or "all", scope["group"], scope["figure"]) if v
        )
        return download([table], format, f"cases-{name}")
    return page(
        request,
        "dashboard_cases.html",
        period=period,
        query=urlencode(scope),
        title=title,
        table=table,
        more=more,
        limit=CASE_LIMIT,
    )


handlers = [dashboard_page, dashboard_cases]
