"""The district read model's supervision tables, kept by the case projection's extension hook.

``sync.projection`` mirrors the `district` database's cases into the shared read model; this
extension, run in the same page transactions (so under the same checkpoint), keeps what only the
district's supervision reads: the kiosk fleet (``enrolment`` and ``kiosk_status`` documents) and
one ``case_supervision`` fact row per case (its period, place, kind, mode, level, staff and
service; the item's department and legal limit in the district's catalogue; days taken in working
days, ratings, 差评 follow-up, transfer) — everything the dashboard counts, in one narrow table.
Fleet rows are upserted by document id and survive a rebuild, so the time each status revision
was first seen — what its clock skew is measured against — is not reset by replaying.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from central.db.models import CaseSupervision, FleetEnrolment, FleetStatus, Item
from central.services import rollups
from core.calendar import WorkCalendar
from core.cases import FOLLOW_UP_WORKING_DAYS, Case
from core.fold import CaseState
from sync.database import Doc

__all__ = [
    "DistrictExtension",
    "item_facts",
    "supervision_row",
]

log = logging.getLogger(__name__)


BAD_LEVELS = (1, 2)


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time from a document, in UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _text(doc: Mapping[str, Any], key: str, limit: int) -> str:
    value = doc.get(key)
    return str(value)[:limit] if value is not None else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class DistrictExtension:
    """The projection extension of the district (``sync.projection.ProjectionExtension``)."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now

    def now(self) -> datetime:
        """The district's time for ``seen_at`` (fixed in tests)."""
        return self._now or datetime.now(UTC)

    def documents(self, session: Session, rows: Sequence[Doc]) -> None:
        """Upsert or remove the fleet rows of the page's enrolment and kiosk-status documents."""
        for row in rows:
            doc_id = row.get("id")
            if not isinstance(doc_id, str):
                continue
            doc = row.get("doc")
            deleted = bool(row.get("deleted")) or (isinstance(doc, Mapping) and doc.get("_deleted"))
            if doc_id.startswith("enrolment:"):
                self._enrolment(session, doc_id, None if deleted else doc)
            elif doc_id.startswith("kiosk_status:"):
                self._status(session, doc_id, None if deleted else doc)

    def _enrolment(self, session: Session, doc_id: str, doc: Any) -> None:
        session.execute(delete(FleetEnrolment).where(FleetEnrolment.doc_id == doc_id))
        if not isinstance(doc, Mapping) or not isinstance(doc.get("registration"), str):
            return
        registration = doc["registration"][:40]
        session.execute(delete(FleetEnrolment).where(FleetEnrolment.registration == registration))
        session.add(
            FleetEnrolment(
                registration=registration,
                doc_id=doc_id[:120],
                village=_text(doc, "village", 12),
                township=_text(doc, "township", 12),
                instance=_text(doc, "instance", 80),
                enrolled_at=_when(doc.get("enrolled_at")),
            )
        )

    def _status(self, session: Session, doc_id: str, doc: Any) -> None:
        key = doc_id[:200]
        old = session.get(FleetStatus, key)
        if not isinstance(doc, Mapping):
            if old is not None:
                session.delete(old)
            return
        rev = _text(doc, "_rev", 100)
        seen = old.seen_at if old is not None and old.rev == rev else self.now()
        clock = _when(doc.get("clock"))
        values: dict[str, Any] = {
            "rev": rev,
            "village": _text(doc, "village", 12),
            "township": _text(doc, "township", 12),
            "instance": _text(doc, "instance", 80),
            "registration": _text(doc, "registration", 40),
            "online": doc.get("online") if isinstance(doc.get("online"), bool) else None,
            "last_success": _when(doc.get("last_success")),
            "last_attempt": _when(doc.get("last_attempt")),
            "last_error": _text(doc, "last_error", 2000),
            "error_kind": _text(doc, "error_kind", 20),
            "waiting": _int(doc.get("waiting")) or 0,
            "refused": _int(doc.get("refused")) or 0,
            "catalogue_version": _int(doc.get("catalogue_version")),
            "clock": clock,
            "app_version": _text(doc, "app_version", 40),
            "seen_at": seen,
            "skew_seconds": None
            if clock is None
            else round((clock - _aware(seen)).total_seconds()),
        }
        if old is None:
            session.add(FleetStatus(doc_id=key, **values))
        else:
            for name, value in values.items():
                setattr(old, name, value)
        session.flush()

    def cases(
        self,
        session: Session,
        ids: Sequence[str],
        folded: Sequence[tuple[Case, CaseState, Mapping[str, Any]]],
        calendar: WorkCalendar,
        today: date,
    ) -> None:
        """Replace the ``case_supervision`` rows of the refolded cases (and mark their months
        changed, so their stored month figures are grouped again)."""
        where = CaseSupervision.case_id.in_(list(ids))
        before = session.scalars(select(CaseSupervision.opened_at).where(where))
        rollups.bump(
            session,
            {rollups.month_of(t) for t in before}
            | {rollups.month_of(row["opened_at"]) for *_, row in folded},
        )
        session.execute(delete(CaseSupervision).where(where))
        items = item_facts(session, {case.item_code for case, _state, _row in folded})
        rows = [
            supervision_row(case, state, row, calendar, items.get(case.item_code, ("", None)))
            for case, state, row in folded
        ]
        if rows:
            session.execute(insert(CaseSupervision), rows)


def item_facts(session: Session, codes: set[str]) -> dict[str, tuple[str, int | None]]:
    """Each catalogue item's department (实施主体) and legal limit in the district's catalogue."""
    if not codes:
        return {}
    found: dict[str, tuple[str, int | None]] = {}
    for code, body in session.execute(select(Item.code, Item.body).where(Item.code.in_(codes))):
        body = body if isinstance(body, Mapping) else {}
        department = str(body.get("department") or "")[:100]
        found[code] = (department, _int(body.get("legal_limit_days")))
    return found


FACT_COLUMNS = (
    "township", "item_code", "item_name", "opened_at", "village", "kind", "mode",
    "handling_level", "status", "assignee", "assignee_name", "returns", "due_on", "yellow_on",
    "due_provisional", "on_time", "completed_on",
)  # fmt: skip
"""What the supervision row copies from the case's ``cases`` row."""


def supervision_row(
    case: Case,
    state: CaseState,
    row: Mapping[str, Any],
    calendar: WorkCalendar,
    item: tuple[str, int | None] = ("", None),
) -> dict[str, Any]:
    """The ``case_supervision`` row of a folded case, from its ``cases`` row, its state and its
    catalogue item's (department, legal limit)."""
    days_taken = None
    if state.completed_on is not None:
        start = state.accepted_on or state.completed_on
        days_taken = max(0, calendar.working_days_between(start, state.completed_on))
        days_taken = max(0, days_taken - state.paused_days)
    bad = [r for r in state.ratings if r.level in BAD_LEVELS]
    follow_up, deadline = "", state.follow_up_deadline
    if state.follow_up_open:
        follow_up = "open"
        if deadline is None and bad:
            deadline = calendar.add_working_days(bad[-1].on, FOLLOW_UP_WORKING_DAYS).day
    elif bad:
        follow_up = "closed"
    return {
        **{name: row[name] for name in FACT_COLUMNS},
        "case_id": case.id,
        "department": item[0],
        "legal_days": item[1],
        "promised_days": case.promised_limit_days,
        "days_taken": days_taken,
        "rating_level": state.ratings[-1].level if state.ratings else None,
        "bad_rating": bool(bad),
        "follow_up": follow_up,
        "follow_up_deadline": deadline,
        "transferred_to": state.transferred_to,
    }
