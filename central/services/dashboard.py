"""The district's supervision figures, grouped, and the ranking of the hardest units (issue 8
items 2-3).

One grouped query over the district read model's fact table ``case_supervision`` (one narrow
row per case, kept by ``district_model``) for cases opened in a period, grouped by township,
village, kind, mode, handling level, staff member, service or department (``GROUPS``). A case
transferred to another township is counted once, where it continues: the ``transferred``
original is left out, its linked new case counts at the new township. Every figure is a sum, so
a total row is the sum of the groups' rows, and a long period the sum of its months: whole past
months come from stored rollups (``rollups``), which is what keeps two years of a district's
cases quick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from central.db.models import CaseSupervision as Fact
from central.services.rollups import Grouped, next_month, summed
from core.cases import RATING_LABELS
from core.catalogue import HandlingLevel, Kind, Mode
from core.fold import CaseStatus
from core.sla import Colour
from sync.readmodel import CaseRow, colour_expr

__all__ = [
    "FIGURES",
    "GROUPS",
    "RANKINGS",
    "RANKING_FIGURES",
    "FigureCase",
    "Figures",
    "Period",
    "figure_cases",
    "figures",
    "group_label",
    "ranking",
]

GROUPS = {
    "township": "镇街",
    "village": "村(社区)",
    "kind": "服务类别",
    "mode": "服务方式",
    "level": "办理层级",
    "staff": "经办人",
    "service": "事项",
    "department": "部门",
}
"""What the figures can be grouped by: name → Chinese label."""

_GROUP_COLUMNS: dict[str, Any] = {
    "township": Fact.township,
    "village": Fact.village,
    "kind": Fact.kind,
    "mode": Fact.mode,
    "level": Fact.handling_level,
    "staff": Fact.assignee,
    "service": Fact.item_code,
    "department": Fact.department,
}
_GROUP_NAMES: dict[str, Any] = {"staff": Fact.assignee_name, "service": Fact.item_name}
"""Groups whose display name is on the fact row itself."""

_ENUMS: dict[str, Any] = {"kind": Kind, "mode": Mode, "level": HandlingLevel}
_EMPTY = {
    "village": "镇街窗口",
    "staff": "未分派",
    "department": "未填实施主体",
    "kind": "未知类别",
}
"""What an empty key means in each group (a counter case has no village, …)."""


def group_label(group: str, key: str, name: str = "", units: dict[str, str] | None = None) -> str:
    """A group's key in Chinese: a unit's name, an enum's label, the name the row carries."""
    if not key:
        return _EMPTY.get(group, "—")
    if group in ("township", "village"):
        return (units or {}).get(key, key)
    if group in _ENUMS:
        try:
            return str(_ENUMS[group](key).label)
        except ValueError:
            return key
    return name or key


NEARBY_LEVELS = ("village", "township")
NO_TRIP_MODES = ("agency", "door_to_door", "video")
"""Modes where the citizen makes no trip: the agent carries it, staff come, or a video call."""

FIGURES = {
    "cases": "办件",
    "green": "绿灯",
    "yellow": "黄灯",
    "red": "红灯",
    "completed": "已办结",
    "completed_late": "超期办结",
    "overdue": "超期",
    "nearby": "就近办理",
    "no_trip": "无需跑腿",
    "returns": "有退回",
    "provisional": "到期日待定",
    "rated": "已评价",
    "bad": "差评",
    "follow_up_open": "差评回访未结",
    "follow_up_late": "差评回访逾期",
    "follow_up_closed": "差评回访已结",
    **{f"rating_{n}": f"评价为{label}" for n, label in RATING_LABELS.items()},
}
"""The figures whose cases can be listed (``figure_cases``): name → Chinese label."""

RANKING_FIGURES = {"bad_rate": "bad", "overdue_rate": "overdue", "returns_per_case": "returns"}
"""The figure whose cases stand behind each ranking's numerator."""

RANKINGS = {
    "bad_rate": "差评率",
    "overdue_rate": "超期率",
    "returns_per_case": "每件退回次数",
}


@dataclass(frozen=True)
class Period:
    """Cases opened from ``start`` to ``end`` (both included, district dates)."""

    start: date
    end: date

    def bounds(self) -> tuple[datetime, datetime]:
        """The UTC instants bounding the period (China Standard Time days)."""
        cst = timedelta(hours=8)
        low = datetime.combine(self.start, time(0), UTC) - cst
        high = datetime.combine(self.end + timedelta(days=1), time(0), UTC) - cst
        return low, high


@dataclass(frozen=True)
class Figures:
    """One group's figures over the period (``key`` empty for "none", e.g. a counter case's
    village; ``name`` the display name the fact rows carry, for staff and services)."""

    key: str
    name: str
    cases: int
    green: int
    yellow: int
    red: int
    completed: int
    completed_late: int
    nearby: int
    no_trip: int
    returns: int
    provisional: int
    days_taken_sum: int
    promised_sum: int
    legal_completed: int
    """Completed cases whose item has a legal limit."""
    legal_sum: int
    rated: int
    rating_1: int
    rating_2: int
    rating_3: int
    rating_4: int
    rating_5: int
    bad: int
    follow_up_open: int
    follow_up_late: int
    follow_up_closed: int

    @classmethod
    def total(cls, rows: list[Figures], name: str = "合计") -> Figures:
        """The sum of ``rows`` (every figure is a count or a sum)."""
        sums = {f.name: sum(getattr(r, f.name) for r in rows) for f in fields(cls)[2:]}
        return cls("", name, **sums)

    @property
    def ratings(self) -> tuple[int, int, int, int, int]:
        """How many cases were last rated 1, 2, 3, 4, 5."""
        return (self.rating_1, self.rating_2, self.rating_3, self.rating_4, self.rating_5)

    @property
    def overdue(self) -> int:
        """Red now plus completed after their due date."""
        return self.red + self.completed_late

    @property
    def bad_rate(self) -> float:
        """差评 per rated case."""
        return self.bad / self.rated if self.rated else 0.0

    @property
    def overdue_rate(self) -> float:
        """Overdue (red or completed late) per case."""
        return self.overdue / self.cases if self.cases else 0.0

    @property
    def returns_per_case(self) -> float:
        """Returns (一次性告知) per case."""
        return self.returns / self.cases if self.cases else 0.0

    @property
    def average_days(self) -> float | None:
        """Average working days taken by the completed cases."""
        return self.days_taken_sum / self.completed if self.completed else None

    @property
    def average_promised(self) -> float | None:
        """Average promised limit of the same completed cases."""
        return self.promised_sum / self.completed if self.completed else None

    @property
    def average_legal(self) -> float | None:
        """Average legal limit of the completed cases whose item has one."""
        return self.legal_sum / self.legal_completed if self.legal_completed else None


def _count(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


OPEN: ColumnElement[str] = literal_column("'open'")
"""Written out (not a bound parameter), so the partial index on open follow-ups matches."""
SUPERVISED = Fact.yellow_on.is_not(None)
"""The rows with a colour today (matching the partial index on them)."""


def _conditions(today: date) -> dict[str, Any]:
    """Each countable figure's condition on a fact row."""
    colour = colour_expr(today, Fact.yellow_on, Fact.due_on)
    done = Fact.days_taken.is_not(None)
    open_follow_up = Fact.follow_up == OPEN
    late = and_(done, Fact.on_time.is_(False))
    return {
        "green": colour == Colour.GREEN.value,
        "yellow": colour == Colour.YELLOW.value,
        "red": colour == Colour.RED.value,
        "completed": done,
        "completed_late": late,
        "overdue": or_(colour == Colour.RED.value, late),
        "nearby": Fact.handling_level.in_(NEARBY_LEVELS),
        "no_trip": Fact.mode.in_(NO_TRIP_MODES),
        "returns": Fact.returns > 0,
        "provisional": Fact.due_provisional.is_(True),
        "rated": Fact.rating_level.is_not(None),
        **{f"rating_{n}": Fact.rating_level == n for n in range(1, 6)},
        "bad": Fact.bad_rating.is_(True),
        "follow_up_open": open_follow_up,
        "follow_up_late": and_(open_follow_up, Fact.follow_up_deadline < today),
        "follow_up_closed": Fact.follow_up == "closed",
    }


def _scope(query: Any, period: Period, township: str) -> Any:
    low, high = period.bounds()
    query = query.where(Fact.opened_at >= low, Fact.opened_at < high)
    query = query.where(Fact.status != CaseStatus.TRANSFERRED.value)
    return query.where(Fact.township == township) if township else query


TODAYS = ("green", "yellow", "red", "follow_up_late")
"""The figures that move with the day; the others (``STEADY``) change only with the cases."""
STEADY = tuple(f.name for f in fields(Figures)[2:] if f.name not in TODAYS)


def _aggregates(today: date) -> dict[str, Any]:
    """Each figure of ``Figures`` as an SQL aggregate over fact rows."""
    c = _conditions(today)
    done = c["completed"]
    with_legal = and_(done, Fact.legal_days.is_not(None))
    sums = {
        "cases": func.count(),
        "returns": func.sum(Fact.returns),
        "days_taken_sum": func.sum(case((done, Fact.days_taken), else_=0)),
        "promised_sum": func.sum(case((done, Fact.promised_days), else_=0)),
        "legal_completed": _count(with_legal),
        "legal_sum": func.sum(case((with_legal, Fact.legal_days), else_=0)),
    }
    return {name: sums[name] if name in sums else _count(c[name]) for name in (*STEADY, *TODAYS)}


def _grouped(
    session: Session, group: str, wanted: Sequence[str], today: date, period: Period,
    township: str = "", *where: Any,
) -> list[Grouped]:  # fmt: skip
    """The ``wanted`` figures of the cases opened in ``period`` by township and group key."""
    aggregates = _aggregates(today)
    key = func.coalesce(_GROUP_COLUMNS[group], "")
    name = func.max(_GROUP_NAMES[group]) if group in _GROUP_NAMES else func.max("")
    query = select(Fact.township, key, name, *(aggregates[n] for n in wanted)).where(*where)
    query = _scope(query, period, township).group_by(Fact.township, key)
    return [
        (
            row[0],
            str(row[1]),
            str(row[2] or ""),
            {n: int(v or 0) for n, v in zip(wanted, row[3:], strict=True)},
        )
        for row in session.execute(query)
    ]


def _months(period: Period, today: date) -> tuple[list[date], list[Period]]:
    """The whole months of ``period`` that are over (their figures can be stored) and the
    periods left at its edges."""
    first = period.start if period.start.day == 1 else next_month(period.start.replace(day=1))
    months: list[date] = []
    while next_month(first) - timedelta(days=1) <= period.end and next_month(first) <= today:
        months.append(first)
        first = next_month(first)
    if not months:
        return [], [period]
    edges = (
        [Period(period.start, months[0] - timedelta(days=1))] if period.start < months[0] else []
    )
    if first <= period.end:
        edges.append(Period(first, period.end))
    return months, edges


def figures(
    session: Session, period: Period, today: date, group: str = "township", township: str = ""
) -> list[Figures]:
    """Every group (``GROUPS``) with cases opened in ``period`` (in one township, or all), in
    key order. The steady figures of whole past months come from their stored rollups; the
    rest is grouped now, today's colours and late follow-ups over the rows that can have them."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")

    def whole(month: date) -> list[Grouped]:
        days = Period(month, next_month(month) - timedelta(days=1))
        return _grouped(session, group, STEADY, today, days)

    months, edges = _months(period, today)
    parts = summed(session, group, months, township, whole)
    for edge in edges:
        parts += _grouped(session, group, STEADY, today, edge, township)
    colours = ("green", "yellow", "red")
    parts += _grouped(session, group, colours, today, period, township, SUPERVISED)
    parts += _grouped(
        session, group, ("follow_up_late",), today, period, township, Fact.follow_up == OPEN
    )
    totals: dict[str, dict[str, int]] = {}
    names: dict[str, str] = {}
    for _township, key, name, counts in parts:
        into = totals.setdefault(key, dict.fromkeys((*STEADY, *TODAYS), 0))
        for figure, value in counts.items():
            into[figure] += value
        names[key] = max(names.get(key, ""), name)
    return [Figures(key, names[key], **totals[key]) for key in sorted(totals)]


@dataclass(frozen=True)
class FigureCase:
    """One case behind a figure."""

    case_number: str
    item_name: str
    village: str | None
    township: str
    status: str
    opened_at: datetime
    due_on: date | None
    due_provisional: bool
    colour: str | None
    assignee_name: str

    @property
    def status_label(self) -> str:
        """The status in Chinese."""
        try:
            return CaseStatus(self.status).label
        except ValueError:
            return self.status

    @property
    def colour_label(self) -> str:
        """绿/黄/红, empty when the case is not supervised."""
        return Colour(self.colour).label if self.colour else ""


def figure_cases(
    session: Session,
    period: Period,
    today: date,
    *,
    township: str = "",
    group: str = "",
    key: str = "",
    figure: str = "",
    limit: int = 1000,
) -> list[FigureCase]:
    """The cases counted in one figure (``FIGURES``; empty for all cases) over ``period``, of
    one township (empty for all) and, with ``group``, of the group whose key is ``key`` (empty
    for the group's "none"): the same conditions ``figures`` counts."""
    if figure and figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}")
    if group and group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")
    query = select(
        CaseRow.case_number, Fact.item_name, Fact.village, Fact.township, Fact.status,
        Fact.opened_at, Fact.due_on, Fact.due_provisional,
        colour_expr(today, Fact.yellow_on, Fact.due_on), Fact.assignee_name,
    ).join(CaseRow, CaseRow.case_id == Fact.case_id)  # fmt: skip
    query = _scope(query, period, township)
    if figure and figure != "cases":
        query = query.where(_conditions(today)[figure])
    if figure in TODAYS:  # let the partial indexes find the few rows it can be
        query = query.where(Fact.follow_up == OPEN if figure == "follow_up_late" else SUPERVISED)
    if group:
        column = _GROUP_COLUMNS[group]
        query = query.where(column == key if key else or_(column.is_(None), column == ""))
    query = query.order_by(Fact.township, Fact.opened_at, Fact.case_id).limit(limit)
    return [FigureCase(*row) for row in session.execute(query)]


def ranking(rows: list[Figures], by: str) -> list[Figures]:
    """The groups hardest first by one of ``RANKINGS`` (ties by more cases, then key)."""
    if by not in RANKINGS:
        raise ValueError(f"unknown ranking {by!r}")
    return sorted(rows, key=lambda f: (-getattr(f, by), -f.cases, f.key))
