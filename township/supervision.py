"""Three-colour supervision (红黄绿) of the unit's open cases, by staff member and by service,
with the overdue list — all read from the SQL read model, colours evaluated for today."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from core.sla import Colour
from sync.readmodel import CaseRow, colour_expr, colour_where
from township.inbox import inbox_scope

__all__ = ["Tally", "Supervision", "supervise", "OVERDUE_LIMIT"]

OVERDUE_LIMIT = 200
"""Overdue cases listed at most (oldest due date first); the counts cover them all."""


@dataclass
class Tally:
    """Supervised cases of one staff member or one service, by colour."""

    key: str
    label: str
    counts: dict[Colour, int] = field(default_factory=lambda: dict.fromkeys(Colour, 0))
    completed: int = 0
    completed_late: int = 0

    @property
    def total(self) -> int:
        """Open supervised cases."""
        return sum(self.counts.values())


@dataclass
class Supervision:
    """What the supervision page shows."""

    totals: dict[Colour, int]
    by_staff: list[Tally]
    by_service: list[Tally]
    overdue: list[CaseRow]
    overdue_total: int
    completed: int
    completed_late: int


def _tallies(
    session: Session, today: date, scope: ColumnElement[bool], key: Any, label: Any
) -> list[Tally]:
    colour = colour_expr(today)
    tallies: dict[str, Tally] = {}
    rows = session.execute(
        select(key, func.max(label), colour, func.count())
        .where(scope, CaseRow.yellow_on.is_not(None))
        .group_by(key, colour)
    )
    for k, name, value, count in rows:
        tally = tallies.setdefault(str(k or ""), Tally(str(k or ""), str(name or k or "")))
        if value is not None:
            tally.counts[Colour(value)] = count
    done = session.execute(
        select(key, func.max(label), func.count(), func.sum(_late()))
        .where(scope, CaseRow.completed_on.is_not(None), CaseRow.on_time.is_not(None))
        .group_by(key)
    )
    for k, name, count, late in done:
        tally = tallies.setdefault(str(k or ""), Tally(str(k or ""), str(name or k or "")))
        tally.completed, tally.completed_late = count, int(late or 0)
    return sorted(
        tallies.values(), key=lambda t: (-t.counts[Colour.RED], -t.counts[Colour.YELLOW], t.label)
    )


def _late() -> Any:
    """1 for a case completed after its due date, for SUM."""
    return case((CaseRow.on_time.is_(False), 1), else_=0)


def supervise(session: Session, unit: str, today: date) -> Supervision:
    """The unit's supervision figures for ``today``."""
    scope = inbox_scope(unit)
    colour = colour_expr(today)
    totals = dict.fromkeys(Colour, 0)
    for value, count in session.execute(
        select(colour, func.count()).where(scope, CaseRow.yellow_on.is_not(None)).group_by(colour)
    ):
        if value is not None:
            totals[Colour(value)] = count
    red = colour_where(Colour.RED, today)
    overdue = list(
        session.execute(
            select(CaseRow).where(scope, red).order_by(CaseRow.due_on, CaseRow.case_number)
            .limit(OVERDUE_LIMIT)
        ).scalars()
    )  # fmt: skip
    completed, late = session.execute(
        select(func.count(), func.sum(_late())).where(
            scope, CaseRow.completed_on.is_not(None), CaseRow.on_time.is_not(None)
        )
    ).one()
    return Supervision(
        totals=totals,
        by_staff=_tallies(session, today, scope, CaseRow.assignee, CaseRow.assignee_name),
        by_service=_tallies(session, today, scope, CaseRow.item_code, CaseRow.item_name),
        overdue=overdue,
        overdue_total=totals[Colour.RED],
        completed=int(completed or 0),
        completed_late=int(late or 0),
    )
