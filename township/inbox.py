"""The township's inbox: its cases from the SQL read model, filtered, searched and paged.

A township's inbox holds every case addressed to it (opened at its villages' kiosks or at its
own counter, or transferred to it) and every case it handles; the district's service centre
sees the cases it handles (escalated and district-level items).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from core.catalogue import Kind, Mode
from core.fold import CaseStatus
from core.hierarchy import Level, level_of
from core.sla import Colour
from sync.readmodel import CaseRow, colour_counts, colour_expr, colour_where, search_clause

__all__ = ["PAGE_SIZE", "InboxFilter", "InboxPage", "inbox_scope", "inbox_page", "latest_change"]

PAGE_SIZE = 50
UNASSIGNED = "-"
"""The ``staff`` filter value for cases nobody is assigned to."""


@dataclass(frozen=True)
class InboxFilter:
    """What the staff member asked for; unknown values are dropped, not errors."""

    kind: str = ""
    mode: str = ""
    status: str = ""
    colour: str = ""
    village: str = ""
    staff: str = ""
    q: str = ""
    page: int = 1

    @classmethod
    def from_query(cls, query: dict[str, Any]) -> InboxFilter:
        """Read the filter from a request's query parameters, keeping only known values."""

        def pick(name: str, allowed: set[str] | None = None) -> str:
            value = str(query.get(name) or "").strip()
            return value if allowed is None or value in allowed else ""

        try:
            page = max(1, int(str(query.get("page") or 1)))
        except ValueError:
            page = 1
        village = pick("village")
        return cls(
            kind=pick("kind", {k.value for k in Kind}),
            mode=pick("mode", {m.value for m in Mode}),
            status=pick("status", {s.value for s in CaseStatus}),
            colour=pick("colour", {c.value for c in Colour}),
            village=village if village.isdigit() and len(village) == 12 else "",
            staff=pick("staff")[:200],
            q=pick("q")[:100],
            page=page,
        )

    def where(self, today: date) -> list[ColumnElement[bool]]:
        """The WHERE clauses of this filter (the scope is added by the caller)."""
        clauses: list[ColumnElement[bool]] = []
        if self.kind:
            clauses.append(CaseRow.kind == self.kind)
        if self.mode:
            clauses.append(CaseRow.mode == self.mode)
        if self.status:
            clauses.append(CaseRow.status == self.status)
        if self.colour:
            clauses.append(colour_where(Colour(self.colour), today))
        if self.village:
            clauses.append(CaseRow.village == self.village)
        if self.staff == UNASSIGNED:
            clauses.append(CaseRow.assignee.is_(None))
        elif self.staff:
            clauses.append(CaseRow.assignee == self.staff)
        if self.q:
            clauses.append(search_clause(self.q))
        return clauses

    def query_string(self, **changes: Any) -> str:
        """This filter as query parameters (for links that change one of them)."""
        values = {
            "kind": self.kind, "mode": self.mode, "status": self.status,
            "colour": self.colour, "village": self.village, "staff": self.staff,
            "q": self.q, "page": self.page, **changes,
        }  # fmt: skip
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


@dataclass
class InboxPage:
    """One page of the inbox with its totals."""

    rows: list[tuple[CaseRow, str | None]]
    """Each case with its colour today (None when it is not supervised)."""
    total: int
    page: int
    pages: int
    colours: dict[Colour, int] = field(default_factory=dict)
    """Supervised cases of each colour among those the filter matches (ignoring its colour)."""


def inbox_scope(unit: str) -> ColumnElement[bool]:
    """The cases a unit's inbox holds: a township's are those addressed to it (opened at its
    villages or counter, or transferred to it; escalated ones stay listed), the district's
    centre's are those it handles. One column each, so its (unit, opened_at) index serves."""
    if level_of(unit) is Level.DISTRICT:
        return CaseRow.handling_unit == unit
    return CaseRow.township == unit


def inbox_page(session: Session, unit: str, wanted: InboxFilter, today: date) -> InboxPage:
    """The page of the inbox that ``wanted`` asks for, newest cases first."""
    scope = inbox_scope(unit)
    where = [scope, *wanted.where(today)]
    total = session.scalar(select(func.count()).select_from(CaseRow).where(*where)) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(wanted.page, pages)
    order = (CaseRow.opened_at.desc(), CaseRow.case_id.desc())
    ids = select(CaseRow.case_id).where(*where).order_by(*order)
    ids = ids.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    found = session.execute(  # the page's ids first (from the index), then their wide rows
        select(CaseRow, colour_expr(today)).where(CaseRow.case_id.in_(ids)).order_by(*order)
    ).all()
    without_colour = InboxFilter(**{**wanted.__dict__, "colour": ""})
    colours = colour_counts(session, today, scope, *without_colour.where(today))
    return InboxPage(
        rows=[(row, colour) for row, colour in found],
        total=total,
        page=page,
        pages=pages,
        colours=colours,
    )


def latest_change(session: Session, unit: str) -> str:
    """A marker that changes whenever a case of the inbox changes (the newest source seq and
    the number of cases), so a page can tell when to refresh."""
    count, newest = session.execute(
        select(func.count(), func.max(CaseRow.last_hlc)).where(inbox_scope(unit))
    ).one()
    return f"{count}:{newest or ''}"
