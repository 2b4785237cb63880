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

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from central.db.models import CaseSupervision
from core.sla import Colour
from sync.readmodel import CaseRow, colour_expr

__all__ = ["Period", "TownshipFigures", "township_figures", "ranking", "RANKINGS"]

NEARBY_LEVELS = ("village", "township")
NO_TRIP_MODES = ("agency", "door_to_door", "video")
"""Modes where the citizen makes no trip: the agent carries it, staff come, or a video call."""

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


def township_figures(session: Session, period: Period, today: date) -> list[TownshipFigures]:
    """Every township with cases opened in ``period``, in code order."""
    low, high = period.bounds()
    colour = colour_expr(today)
    done = CaseSupervision.days_taken.is_not(None)
    query = (
        select(
            CaseRow.township,
            func.count(),
            _count(colour == Colour.GREEN.value),
            _count(colour == Colour.YELLOW.value),
            _count(colour == Colour.RED.value),
            _count(done),
            _count(and_(done, CaseRow.on_time.is_(False))),
            _count(CaseRow.handling_level.in_(NEARBY_LEVELS)),
            _count(CaseRow.mode.in_(NO_TRIP_MODES)),
            func.sum(CaseRow.returns),
            _count(CaseRow.due_provisional.is_(True)),
            func.sum(case((done, CaseSupervision.days_taken), else_=0)),
            func.sum(case((done, CaseSupervision.promised_days), else_=0)),
            _count(CaseSupervision.rating_level.is_not(None)),
            _count(CaseSupervision.bad_rating.is_(True)),
            _count(CaseSupervision.follow_up == "open"),
            _count(
                and_(
                    CaseSupervision.follow_up == "open",
                    CaseSupervision.follow_up_deadline < today,
                )
            ),
            _count(CaseSupervision.follow_up == "closed"),
        )
        .select_from(CaseRow)
        .outerjoin(CaseSupervision, CaseSupervision.case_id == CaseRow.case_id)
        .where(CaseRow.opened_at >= low, CaseRow.opened_at < high)
        .where(CaseRow.status != "transferred")
        .group_by(CaseRow.township)
        .order_by(CaseRow.township)
    )
    return [
        TownshipFigures(row[0], *(int(v or 0) for v in row[1:]))  # type: ignore[arg-type]
        for row in session.execute(query)
    ]


def ranking(figures: list[TownshipFigures], by: str) -> list[TownshipFigures]:
    """The townships hardest first by one of ``RANKINGS`` (ties by more cases, then code)."""
    if by not in RANKINGS:
        raise ValueError(f"unknown ranking {by!r}")
    return sorted(figures, key=lambda f: (-getattr(f, by), -f.cases, f.township))
