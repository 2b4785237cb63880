"""The district's dashboard (issue 8 items 2-3, 7): per-township figures over a period, each
chart beside its table, the ranking of the hardest townships, the cases behind every figure, and
every table as CSV or XLSX (``?format=csv|xlsx``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

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
    RANKING_FIGURES,
    RANKINGS,
    FigureCase,
    Period,
    TownshipFigures,
    figure_cases,
    ranking,
    township_figures,
)
from central.services.exports import FORMATS, Cell, Table, export
from central.web.auth import admin_guard
from central.web.charts import Series, bar_chart
from central.web.deps import in_db
from central.web.i18n import DISTRICT_TZ
from central.web.ui import page

__all__ = ["handlers", "download"]

GREEN, YELLOW, RED, BLUE, GREY, TEAL = (
    "#2e9d57",
    "#e0a800",
    "#d64545",
    "#3b6fd8",
    "#9aa3ad",
    "#1f9a9a",
)
CASE_LIMIT = 2000


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
class Section:
    """A table of the dashboard with its chart; ``links`` names the figure behind each column."""

    key: str
    table: Table
    codes: Sequence[str]
    """The township of each row, for the links to its cases."""
    links: Sequence[str | None]
    chart: Markup | None = None


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _one(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _sections(figures: Sequence[TownshipFigures], names: dict[str, str]) -> list[Section]:
    labels = [names.get(f.township, f.township) for f in figures]
    codes = [f.township for f in figures]

    def table(
        title: str, headers: Sequence[str], row: Callable[[TownshipFigures], list[Cell]]
    ) -> Table:
        return Table(
            title,
            ["镇街", *headers],
            [[label, *row(f)] for label, f in zip(labels, figures, strict=True)],
        )

    volume = table(
        "办件量",
        ["办件", "已办结", "超期办结", "到期日待定"],
        lambda f: [f.cases, f.completed, f.completed_late, f.provisional],
    )
    colours = table(
        "三色预警(今日)", ["绿灯", "黄灯", "红灯"], lambda f: [f.green, f.yellow, f.red]
    )
    nearby = table(
        "就近办与无需跑腿",
        ["办件", "就近办理", "就近办理占比(%)", "无需跑腿", "无需跑腿占比(%)"],
        lambda f: [f.cases, f.nearby, _pct(f.nearby, f.cases), f.no_trip, _pct(f.no_trip, f.cases)],
    )
    days = table(
        "实际用时与承诺时限",
        ["已办结", "平均用时(工作日)", "平均承诺时限(工作日)"],
        lambda f: [f.completed, _one(f.average_days), _one(f.average_promised)],
    )
    follow = table(
        "评价与差评回访",
        ["已评价", "差评", "回访未结", "其中逾期", "回访已结"],
        lambda f: [f.rated, f.bad, f.follow_up_open, f.follow_up_late, f.follow_up_closed],
    )
    return [
        Section(
            "volume", volume, codes, [None, "cases", "completed", "completed_late", "provisional"],
            bar_chart("办件量", labels, [Series("办件", BLUE, [f.cases for f in figures])]),
        ),
        Section(
            "colours", colours, codes, [None, "green", "yellow", "red"],
            bar_chart(
                "三色预警", labels,
                [Series("绿灯", GREEN, [f.green for f in figures]),
                 Series("黄灯", YELLOW, [f.yellow for f in figures]),
                 Series("红灯", RED, [f.red for f in figures])],
                stacked=True,
            ),
        ),
        Section(
            "nearby", nearby, codes, [None, "cases", "nearby", None, "no_trip", None],
            bar_chart(
                "就近办与无需跑腿占比", labels,
                [Series("就近办理", BLUE, [_pct(f.nearby, f.cases) for f in figures]),
                 Series("无需跑腿", TEAL, [_pct(f.no_trip, f.cases) for f in figures])],
                unit="%", maximum=100,
            ),
        ),
        Section(
            "days", days, codes, [None, "completed", None, None],
            bar_chart(
                "平均用时与承诺时限", labels,
                [Series("实际用时", BLUE, [_one(f.average_days) for f in figures]),
                 Series("承诺时限", GREY, [_one(f.average_promised) for f in figures])],
                unit="天",
            ),
        ),
        Section(
            "follow_up", follow, codes,
            [None, "rated", "bad", "follow_up_open", "follow_up_late", "follow_up_closed"],
            bar_chart(
                "差评回访", labels,
                [Series("未结(未逾期)", YELLOW,
                        [f.follow_up_open - f.follow_up_late for f in figures]),
                 Series("逾期", RED, [f.follow_up_late for f in figures]),
                 Series("已结", GREEN, [f.follow_up_closed for f in figures])],
                stacked=True,
            ),
        ),
    ]  # fmt: skip


def _ranking_section(figures: Sequence[TownshipFigures], names: dict[str, str], by: str) -> Section:
    ordered = ranking(list(figures), by)
    part, whole = {
        "bad_rate": (("差评", "bad"), ("已评价", "rated")),
        "overdue_rate": (("超期", "overdue"), ("办件", "cases")),
        "returns_per_case": (("退回次数", "returns"), ("办件", "cases")),
    }[by]
    headers = ["名次", "镇街", f"{RANKINGS[by]}(%)" if by != "returns_per_case" else RANKINGS[by],
               part[0], whole[0]]  # fmt: skip
    rows: list[list[Cell]] = []
    for n, f in enumerate(ordered, start=1):
        value = getattr(f, by)
        shown = round(100 * value, 1) if by != "returns_per_case" else round(value, 2)
        rows.append([n, names.get(f.township, f.township), shown, getattr(f, part[1]),
                     getattr(f, whole[1])])  # fmt: skip
    return Section(
        "ranking",
        Table(f"最难办事排名 · {RANKINGS[by]}", headers, rows),
        [f.township for f in ordered],
        [None, None, None, RANKING_FIGURES[by], whole[1]],
    )


def _figures_table(figures: Sequence[TownshipFigures], names: dict[str, str]) -> Table:
    headers = ["镇街代码", "镇街", "办件", "绿灯", "黄灯", "红灯", "已办结", "超期办结", "超期",
               "就近办理", "无需跑腿", "退回次数", "到期日待定", "平均用时", "平均承诺时限",
               "已评价", "差评", "差评率", "超期率", "每件退回次数", "回访未结", "回访逾期",
               "回访已结"]  # fmt: skip
    rows: list[list[Cell]] = [
        [f.township, names.get(f.township, f.township), f.cases, f.green, f.yellow, f.red,
         f.completed, f.completed_late, f.overdue, f.nearby, f.no_trip, f.returns, f.provisional,
         f.average_days, f.average_promised, f.rated, f.bad, f.bad_rate, f.overdue_rate,
         f.returns_per_case, f.follow_up_open, f.follow_up_late, f.follow_up_closed]
        for f in figures
    ]  # fmt: skip
    return Table("各镇街全部指标", headers, rows)


def _township_names(session: Any) -> dict[str, str]:
    units = hierarchy.list_units(session, level="township", limit=1000)
    return {u.code: u.name for u in units}


def _dashboard(session: Any, period: Period, today: date, silent_hours: float) -> dict[str, Any]:
    return {
        "figures": township_figures(session, period, today),
        "names": _township_names(session),
        "alerts": alerts(session, today, datetime.now(UTC), silent_hours),
    }


@get("/dashboard", guards=[admin_guard])
async def dashboard_page(
    request: Request,  # type: ignore[type-arg]
    start: Annotated[str, QueryParameter(name="from")] = "",
    end: Annotated[str, QueryParameter(name="to")] = "",
    township: FromQuery[str] = "",
    by: FromQuery[str] = "bad_rate",
    format: FromQuery[str] = "",
) -> Template | Response[bytes]:
    """Per-township figures over a period, each chart beside its table, and the ranking."""
    today = district_today()
    period = period_of(start, end, today)
    by = by if by in RANKINGS else "bad_rate"
    silent_hours = request.app.state.settings.kiosk_silent_hours
    context = await in_db(request, _dashboard, period, today, silent_hours)
    names: dict[str, str] = context["names"]
    figures = [f for f in context["figures"] if not township or f.township == township]
    sections = _sections(figures, names)
    rank = _ranking_section(figures, names, by)
    if format in FORMATS:
        tables = [_figures_table(figures, names), *(s.table for s in sections), rank.table]
        return download(tables, format, f"dashboard-{period.start}-{period.end}")
    total = sum(f.cases for f in figures)
    return page(
        request,
        "dashboard.html",
        period=period,
        today=today,
        township=township,
        townships=sorted(names.items()),
        by=by,
        RANKINGS=RANKINGS,
        sections=sections,
        alerts=context["alerts"],
        rank=rank,
        total=total,
    )


# --- the cases behind a figure ---------------------------------------------------------------


def _cases(session: Any, period: Period, today: date, township: str, figure: str) -> dict[str, Any]:
    cases = figure_cases(
        session, period, today, township=township, figure=figure, limit=CASE_LIMIT + 1
    )
    codes = {c.village for c in cases if c.village} | {c.township for c in cases}
    names = dict(session.execute(select(Unit.code, Unit.name).where(Unit.code.in_(codes))).all())
    if township and township not in names:
        names.update(_township_names(session))
    return {"cases": cases, "names": names}


def _cases_table(cases: Sequence[FigureCase], names: dict[str, str], title: str) -> Table:
    headers = ["办件编号", "事项", "镇街", "村(社区)", "状态", "受理登记时间", "到期日", "三色"]
    rows: list[list[Cell]] = [
        [c.case_number, c.item_name, names.get(c.township, c.township),
         names.get(c.village, c.village) if c.village else "镇街窗口", c.status_label,
         c.opened_at.astimezone(DISTRICT_TZ).strftime("%Y-%m-%d %H:%M"),
         (f"{c.due_on}{' (待定)' if c.due_provisional else ''}" if c.due_on else None),
         c.colour_label]
        for c in cases
    ]  # fmt: skip
    return Table(title, headers, rows)


@get("/dashboard/cases", guards=[admin_guard])
async def dashboard_cases(
    request: Request,  # type: ignore[type-arg]
    start: Annotated[str, QueryParameter(name="from")] = "",
    end: Annotated[str, QueryParameter(name="to")] = "",
    township: FromQuery[str] = "",
    figure: FromQuery[str] = "",
    format: FromQuery[str] = "",
) -> Template | Response[bytes]:
    """The cases counted in one township's figure over the period."""
    today = district_today()
    period = period_of(start, end, today)
    figure = figure if figure in FIGURES else "cases"
    township = township[:12]
    context = await in_db(request, _cases, period, today, township, figure)
    cases: list[FigureCase] = context["cases"]
    more = len(cases) > CASE_LIMIT
    cases = cases[:CASE_LIMIT]
    names: dict[str, str] = context["names"]
    place = names.get(township, township) if township else "全区"
    title = f"{place} · {FIGURES[figure]}"
    table = _cases_table(cases, names, title)
    if format in FORMATS:
        return download([table], format, f"cases-{township or 'all'}-{figure}")
    return page(
        request,
        "dashboard_cases.html",
        period=period,
        township=township,
        figure=figure,
        title=title,
        table=table,
        more=more,
        limit=CASE_LIMIT,
    )


handlers = [dashboard_page, dashboard_cases]
