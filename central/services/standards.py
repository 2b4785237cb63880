"""The standardisation report (issue 8 item 4): legal vs promised limits, and the actual days.

Per item of the newest published catalogue: its legal and promised limits in working days, the
days the promise saves, and the average working days its completed cases actually took (from the
district read model's ``case_supervision``: acceptance to completion, suspensions excluded). The
total sums the legal and promised limits over the items that have a legal limit, as the seed's
"15,215 legal days promised as 2,529 across 699 items" does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.db.models import CaseSupervision
from core.catalogue import CatalogueItem, Kind

__all__ = ["StandardsFilter", "StandardsRow", "StandardsTotal", "standards_report"]


@dataclass(frozen=True)
class StandardsFilter:
    """What the report page asks for: a kind, a search text, a period of completion."""

    kind: str = ""
    q: str = ""
    completed_from: date | None = None
    completed_to: date | None = None


@dataclass(frozen=True)
class StandardsRow:
    """One catalogue item's limits and its cases' actual average."""

    code: str
    name: str
    kind: str
    kind_label: str
    department: str
    case_type_label: str
    legal_days: int | None
    promised_days: int
    completed: int
    average_days: float | None

    @property
    def saved_days(self) -> int | None:
        """Legal minus promised working days (None without a legal limit)."""
        return None if self.legal_days is None else self.legal_days - self.promised_days


@dataclass(frozen=True)
class StandardsTotal:
    """The whole catalogue's figures."""

    items: int
    items_with_legal: int
    legal_days: int
    promised_days: int
    completed: int
    average_days: float | None

    @property
    def saved_days(self) -> int:
        """Working days the promises save over the items with a legal limit."""
        return self.legal_days - self.promised_days

    @property
    def compression(self) -> float | None:
        """Share of the legal days saved (0..1), None without any legal limit."""
        return None if self.legal_days == 0 else self.saved_days / self.legal_days


def standards_report(
    session: Session, items: Sequence[CatalogueItem], wanted: StandardsFilter
) -> tuple[list[StandardsRow], StandardsTotal]:
    """The report's rows (catalogue order: kind, then code) and its total, filtered."""
    text = wanted.q.strip()
    chosen = [
        i
        for i in items
        if (not wanted.kind or i.kind.value == wanted.kind)
        and (not text or text in i.name or text in i.code or text in i.department)
    ]
    query = select(
        CaseSupervision.item_code,
        func.count(),
        func.sum(CaseSupervision.days_taken),
    ).where(CaseSupervision.days_taken.is_not(None))
    if wanted.completed_from is not None:
        query = query.where(CaseSupervision.completed_on >= wanted.completed_from)
    if wanted.completed_to is not None:
        query = query.where(CaseSupervision.completed_on <= wanted.completed_to)
    codes = [i.code for i in chosen]
    actual = {
        code: (int(count), int(summed or 0))
        for code, count, summed in session.execute(
            query.where(CaseSupervision.item_code.in_(codes)).group_by(CaseSupervision.item_code)
        )
    }
    rows = []
    kinds = list(Kind)
    for item in sorted(chosen, key=lambda i: (kinds.index(i.kind), i.code)):
        count, days_sum = actual.get(item.code, (0, 0))
        rows.append(
            StandardsRow(
                code=item.code,
                name=item.name,
                kind=item.kind.value,
                kind_label=item.kind.label,
                department=item.department,
                case_type_label=item.case_type.label,
                legal_days=item.legal_limit_days,
                promised_days=item.promised_limit_days,
                completed=count,
                average_days=round(days_sum / count, 2) if count else None,
            )
        )
    with_legal = [r for r in rows if r.legal_days is not None]
    completed = sum(r.completed for r in rows)
    days = sum(actual.get(r.code, (0, 0))[1] for r in rows)
    total = StandardsTotal(
        items=len(rows),
        items_with_legal=len(with_legal),
        legal_days=sum(r.legal_days or 0 for r in with_legal),
        promised_days=sum(r.promised_days for r in with_legal),
        completed=completed,
        average_days=round(days / completed, 2) if completed else None,
    )
    return rows, total
