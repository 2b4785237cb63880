"""Month rollups of the dashboard's steady figures, so periods of months or years read a few
hundred stored rows instead of every case.

A *steady* figure changes only when a case changes (how many cases, completed, rated, …), not
with the day (today's colours). Each (group, month) — the cases opened in that district month —
is grouped once and stored in ``month_figures`` with the month's version from
``supervision_months``; the projection's extension bumps that version whenever it rewrites a
fact row of the month (``bump``), so a stored rollup is used only while nothing in its month
has changed since. Months not yet over are never stored: they change all day.

Reading the version before grouping makes a race harmless: a change committed in between
leaves the stored rollup with an older version than the month's, and it is grouped again next
time. Rollups are written on a connection of their own, best effort: when another request
stored the same month first, or the database is busy, the figures are still answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from central.db.models import MonthFigures, SupervisionMonth

__all__ = ["COUNTS", "Grouped", "MARK", "bump", "month_of", "next_month", "summed"]

log = logging.getLogger(__name__)

Grouped = tuple[str, str, str, dict[str, int]]
"""One group of one township: (township, key, name, figures)."""

MARK = "-"
"""The township of the row marking a (group, month) as grouped (no unit code is ``-``)."""

_CST = timedelta(hours=8)


def month_of(moment: datetime) -> date:
    """The district month (its first day) of an instant (a naive one is UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware.astimezone(UTC) + _CST).date().replace(day=1)


def next_month(month: date) -> date:
    """The first day of the month after ``month``."""
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def bump(session: Session, months: Iterable[date]) -> None:
    """Record that fact rows of ``months`` changed (in the projection's transaction)."""
    wanted = set(months)
    if not wanted:
        return
    known = set(
        session.scalars(select(SupervisionMonth.month).where(SupervisionMonth.month.in_(wanted)))
    )
    if known:
        session.execute(
            update(SupervisionMonth)
            .where(SupervisionMonth.month.in_(known))
            .values(version=SupervisionMonth.version + 1)
        )
    for month in sorted(wanted - known):
        session.add(SupervisionMonth(month=month, version=1))
    session.flush()


COUNTS = tuple(
    c.name
    for c in MonthFigures.__table__.columns
    if c.name not in ("grp", "month", "township", "key", "name", "version")
)
"""The figures a rollup row counts (its count columns)."""


def _months_state(
    session: Session, group: str, months: list[date]
) -> tuple[dict[date, int], set[date]]:
    """Each month's version, and the months whose stored rollups were grouped at it."""
    versions: dict[date, int] = dict(
        session.execute(
            select(SupervisionMonth.month, SupervisionMonth.version).where(
                SupervisionMonth.month.in_(months)
            )
        ).all()
    )
    marks = session.execute(
        select(MonthFigures.month, MonthFigures.version).where(
            MonthFigures.grp == group, MonthFigures.month.in_(months), MonthFigures.township == MARK
        )
    ).all()
    return versions, {month for month, version in marks if version == versions.get(month, 0)}


def summed(
    session: Session,
    group: str,
    months: list[date],
    township: str,
    compute: Callable[[date], list[Grouped]],
) -> list[Grouped]:
    """The groups of ``months`` (of one township, or all), summed over the months: from their
    stored rollups, grouping (and storing) first the months whose rollups are missing or old.
    A month that could not be stored is added from what was grouped."""
    if not months:
        return []
    versions, good = _months_state(session, group, months)
    unstored: list[Grouped] = []
    for month in sorted(set(months) - good):
        fresh = compute(month)  # grouped after reading the version: see the module's docstring
        if _store(session, group, month, versions.get(month, 0), fresh):
            good.add(month)
        else:
            unstored += [g for g in fresh if township in ("", g[0])]
    query = select(
        MonthFigures.key, func.max(MonthFigures.name),
        *(func.sum(getattr(MonthFigures, name)) for name in COUNTS),
    ).where(
        MonthFigures.grp == group, MonthFigures.month.in_(good), MonthFigures.township != MARK
    )  # fmt: skip
    if township:
        query = query.where(MonthFigures.township == township)
    rows = session.execute(query.group_by(MonthFigures.key)).all()
    return unstored + [
        (
            township,
            row[0],
            row[1] or "",
            {n: int(v or 0) for n, v in zip(COUNTS, row[2:], strict=True)},
        )
        for row in rows
    ]


def _store(session: Session, group: str, month: date, version: int, rows: list[Grouped]) -> bool:
    values = [
        {"grp": group, "month": month, "township": township, "key": key, "name": name[:200],
         "version": version, **dict.fromkeys(COUNTS, 0), **counts}
        for township, key, name, counts in [*rows, (MARK, MARK, "", {})]
    ]  # fmt: skip
    try:
        with Session(session.get_bind()) as writer, writer.begin():
            writer.execute(
                delete(MonthFigures).where(MonthFigures.grp == group, MonthFigures.month == month)
            )
            writer.execute(insert(MonthFigures), values)
    except SQLAlchemyError as exc:  # stored by another request meanwhile, or busy: no matter
        log.info("month figures of %s %s not stored: %s", group, month, exc)
        return False
    return True
