"""Overdue commitments (告知承诺): materials promised to follow whose deadline has passed, listed
per village so the village agents can remind the applicants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.fold import CaseStatus
from sync.readmodel import CaseRow
from township.inbox import inbox_scope

__all__ = ["OverdueCommitment", "overdue_commitments"]

_WATCHED = (
    CaseStatus.SUBMITTED, CaseStatus.RECEIVED, CaseStatus.ACCEPTED, CaseStatus.SUSPENDED,
    CaseStatus.RETURNED, CaseStatus.COMPLETED,
)  # fmt: skip
"""The statuses in which a promise still binds (as the fold counts overdue commitments)."""


@dataclass(frozen=True)
class OverdueCommitment:
    """One promised material past its deadline."""

    case_number: str
    item_name: str
    applicant_name: str
    phone: str
    village: str | None
    material: str
    deadline: date
    days_overdue: int


def overdue_commitments(session: Session, unit: str, today: date) -> list[OverdueCommitment]:
    """Every promised material of the unit's cases whose deadline is before ``today``, by
    village, then deadline.

    Read from each case's folded materials (the read model keeps no column for them; the
    cases with promises are few)."""
    rows = session.execute(
        select(CaseRow.case_number, CaseRow.item_name, CaseRow.applicant_name, CaseRow.phone,
               CaseRow.village, CaseRow.state)
        .where(inbox_scope(unit), CaseRow.status.in_([s.value for s in _WATCHED]))
    ).all()  # fmt: skip
    found: list[OverdueCommitment] = []
    for number, item, name, phone, village, state in rows:
        for m in (state or {}).get("materials", ()):
            deadline = m.get("deadline")
            if m.get("status") != "to_follow" or not deadline:
                continue
            due = date.fromisoformat(deadline)
            if due < today:
                found.append(
                    OverdueCommitment(
                        number,
                        item,
                        name,
                        phone,
                        village,
                        str(m.get("name")),
                        due,
                        (today - due).days,
                    )  # fmt: skip
                )
    return sorted(found, key=lambda o: (o.village or "", o.deadline, o.case_number))
