"""Per-township supervision figures and the ranking of the hardest units (issue 8 items 2-3).

One grouped query over the district read model (``cases`` joined with ``case_supervision``)
for cases opened in a period. A case transferred to another township is counted once, where it
continues: the ``transferred`` original is left out, its linked new case counts at the new
township.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from central.db.models import CaseSupervision
from core.fold import CaseStatus
from core.sla import Colour
from sync.readmodel import CaseRow, colour_expr

__all__ = [
    "FIGURES",
    "RANKINGS",
    "RANKING_FIGURES",
    "FigureCase",
    "Period",
    "TownshipFigures",
    "figure_cases",
    "ranking",
    "township_figures",
]

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
class TownshipFigures:
    """One township's figures over the period."""

    township: str
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
    rated: int
    bad: int
    follow_up_open: int
    follow_up_late: int
    follow_up_closed: int

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


def _count(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _conditions(today: date) -> dict[str, Any]:
    """Each countable figure's condition on a case row (joined with its supervision row)."""
    colour = colour_expr(today)
    done = CaseSupervision.days_taken.is_not(None)
    open_follow_up = CaseSupervision.follow_up == "open"
    late = and_(done, CaseRow.on_time.is_(False))
    return {
        "green": colour == Colour.GREEN.value,
        "yellow": colour == Colour.YELLOW.value,
        "red": colour == Colour.RED.value,
        "completed": done,
        "completed_late": late,
        "overdue": or_(colour == Colour.RED.value, late),
        "nearby": CaseRow.handling_level.in_(NEARBY_LEVELS),
        "no_trip": CaseRow.mode.in_(NO_TRIP_MODES),
        "returns": CaseRow.returns > 0,
        "provisional": CaseRow.due_provisional.is_(True),
        "rated": CaseSupervision.rating_level.is_not(None),
        "bad": CaseSupervision.bad_rating.is_(True),
        "follow_up_open": open_follow_up,
        "follow_up_late": and_(open_follow_up, CaseSupervision.follow_up_deadline < today),
        "follow_up_closed": CaseSupervision.follow_up == "closed",
    }


def _in_period(query: Any, period: Period) -> Any:
    low, high = period.bounds()
    return (
        query.select_from(CaseRow)
        .outerjoin(CaseSupervision, CaseSupervision.case_id == CaseRow.case_id)
        .where(CaseRow.opened_at >= low, CaseRow.opened_at < high)
        .where(CaseRow.status != "transferred")
    )


def township_figures(session: Session, period: Period, today: date) -> list[TownshipFigures]:
    """Every township with cases opened in ``period``, in code order."""
    c = _conditions(today)
    done = c["completed"]
    query = _in_period(
        select(
            CaseRow.township,
            func.count(),
            _count(c["green"]),
            _count(c["yellow"]),
            _count(c["red"]),
            _count(done),
            _count(c["completed_late"]),
            _count(c["nearby"]),
            _count(c["no_trip"]),
            func.sum(CaseRow.returns),
            _count(c["provisional"]),
            func.sum(case((done, CaseSupervision.days_taken), else_=0)),
            func.sum(case((done, CaseSupervision.promised_days), else_=0)),
            _count(c["rated"]),
            _count(c["bad"]),
            _count(c["follow_up_open"]),
            _count(c["follow_up_late"]),
            _count(c["follow_up_closed"]),
        ),
        period,
    )
    query = query.group_by(CaseRow.township).order_by(CaseRow.township)
    return [
        TownshipFigures(row[0], *(int(v or 0) for v in row[1:]))  # type: ignore[arg-type]
        for row in session.execute(query)
    ]


@dataclass(frozen=True)
class FigureCase:
    """One case behind a township's figure."""

    case_number: str
    item_name: str
    village: str | None
    township: str
    status: str
    opened_at: datetime
    due_on: date | None
    due_provisional: bool
    colour: str | None

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
    figure: str = "",
    limit: int = 1000,
) -> list[FigureCase]:
    """The cases counted in one figure (``FIGURES``; empty for all cases) of one township (empty
    for every township) over ``period``: the same conditions ``township_figures`` counts."""
    if figure and figure not in FIGURES:
        raise ValueError(f"unknown figure {figure!r}")
    colour = colour_expr(today)
    query = _in_period(
        select(
            CaseRow.case_number,
            CaseRow.item_name,
            CaseRow.village,
            CaseRow.township,
            CaseRow.status,
            CaseRow.opened_at,
            CaseRow.due_on,
            CaseRow.due_provisional,
            colour,
        ),
        period,
    )
    if figure and figure != "cases":
        query = query.where(_conditions(today)[figure])
    if township:
        query = query.where(CaseRow.township == township)
    query = query.order_by(CaseRow.township, CaseRow.opened_at, CaseRow.case_id).limit(limit)
    return [FigureCase(*row) for row in session.execute(query)]


def ranking(figures: list[TownshipFigures], by: str) -> list[TownshipFigures]:
    """The townships hardest first by one of ``RANKINGS`` (ties by more cases, then code)."""
    if by not in RANKINGS:
        raise ValueError(f"unknown ranking {by!r}")
    return sorted(figures, key=lambda f: (-getattr(f, by), -f.cases, f.township))
