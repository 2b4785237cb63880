"""The township's visit calendar and door-to-door dispatch (上门办).

A *slot* is (staff member, working day, period). Staff *offer* slots (``visit_offers``: the
head of centre edits anyone's, a staff member their own); a visit *books* an offered slot
(``visit_bookings``, whose primary key is the slot). Taking a slot is one INSERT: of two
requests for the same slot the database lets exactly one commit and refuses the other with an
IntegrityError (unique key), on SQLite and PostgreSQL alike — no check-then-write window. The
booking's foreign key to the offer refuses booking a slot nobody offers and withdrawing an
offer that is booked.

The case events stay the truth of the case: scheduling takes the slot first, then writes
``visit_scheduled`` through the node's writer (the slot is given back if CouchDB does not take
the event), and only then frees the slot the visit had before (a move). Cancelling writes
``visit_cancelled`` first and then frees the slot; recording writes ``visit_recorded`` and keeps
the booking with its outcome, so a day's route sheet stays as it was (a citizen who was absent
is rescheduled with another ``visit_scheduled`` of the same visit, in a new slot).

Visits asked for at a kiosk (or, later, by a citizen through the district: issue 6) arrive as
``visit_requested`` events; ``confirm_requested_visits`` — run on every catch-up of the node —
takes a free slot of the requested period for each and writes ``visit_scheduled``, or leaves
the request listed, with why, for staff to pick another period.

Published availability: one ``visit_availability:<township>:<YYYY-MM-DD>`` document per
township and working day in the case database (it travels up to the district by the
``upward`` filter). Per day rather than per week so that a booking rewrites one small document
and the district reads a booking window as one ``_all_docs`` key range. It carries only the
capacity and free count per period — no staff names, no citizen data. It is never deleted (a
tombstone has no ``type`` and would not travel up): a day nobody offers any more says 0.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Text, cast, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.calendar import WorkCalendar
from core.cases import (
    Case,
    EventKind,
    Organisation,
    VisitCancelled,
    VisitOutcome,
    VisitRecorded,
    VisitScheduled,
    case_from_doc,
    local_date,
)
from core.errors import FieldError, InvalidInput
from core.fold import ALLOWED, OPEN, CaseState, VisitStatus
from core.visits import PERIODS, parse_period
from sync.couch import couch_errors
from sync.errors import CouchConflict
from sync.readmodel import CaseDoc, CaseRow
from sync.writer import EventWriter
from township.errors import TownshipError
from township.inbox import inbox_scope
from township.models import StaffAvailability, VisitBooking, VisitRow
from township.read_model import district_rules
from township.staff import DIRECTORY_DB, console_roles

__all__ = [
    "PERIODS",
    "Slot",
    "Cell",
    "Dispatch",
    "RouteStop",
    "VisitError",
    "SlotTaken",
    "NotOffered",
    "DayRefused",
    "VisitRefused",
    "parse_period",
    "parse_slot",
    "today_here",
    "check_visit_day",
    "working_days",
    "unit_staff",
    "set_offers",
    "week_grid",
    "free_slots",
    "book_slot",
    "release_slot",
    "availability_doc",
    "publish_availability",
    "route_sheet",
    "requested_visits",
    "confirm_requested_visits",
    "visit_lock",
    "held_slot",
    "visit_status",
    "place_visit",
    "AUTO_CONFIRMER",
]


AUTO_CONFIRMER = "node"
"""The author of ``visit_scheduled`` events the node writes when it confirms a request."""

PUBLISH_TRIES = 5


class VisitError(TownshipError):
    """Root of the visit calendar's refusals; the message is for the user, in Chinese."""


class SlotTaken(VisitError):
    """Someone else booked the slot first."""


class NotOffered(VisitError):
    """Nobody offers that slot (or the offer was withdrawn)."""


class DayRefused(VisitError):
    """Not a working day, or a day already past."""


class VisitRefused(VisitError):
    """The case or visit cannot take this step now."""


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Slot:
    """One staff member's period on one day."""

    day: date
    period: str
    staff: str

    @property
    def key(self) -> str:
        """How a form names the slot: ``<day>|<period>|<staff>``."""
        return f"{self.day.isoformat()}|{self.period}|{self.staff}"


def parse_slot(text: str) -> Slot:
    """The slot a form names (``<day>|<period>|<staff>``); InvalidInput if malformed."""
    try:
        day, period, staff = str(text).split("|", 2)
        return Slot(date.fromisoformat(day), parse_period(period), staff.strip().lower())
    except (ValueError, InvalidInput):
        raise InvalidInput(FieldError("slot", "请选择一个空闲时段", "Pick a free slot")) from None


def today_here() -> date:
    """Today in China."""
    return local_date(datetime.now(UTC))


def check_visit_day(calendar: WorkCalendar, day: date, today: date) -> None:
    """Refuse a day already past or not a working day (weekends, statutory holidays)."""
    if day < today:
        raise DayRefused(f"{day.isoformat()} 已过, 请选择今天或以后的工作日")
    if not calendar.is_workday(day):
        raise DayRefused(f"{day.isoformat()} 不是工作日 (周末或法定节假日), 不能安排上门")


def working_days(calendar: WorkCalendar, start: date, count: int) -> list[date]:
    """The first ``count`` working days from ``start`` (included if it is one)."""
    days: list[date] = []
    day = start
    while len(days) < count:
        if calendar.is_workday(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def unit_staff(server: Any, unit: str) -> list[tuple[str, str]]:
    """(username, display name) of the unit's enabled console accounts, by username."""
    roles = {r.value for r in console_roles(unit)}
    with couch_errors():
        rows = server[DIRECTORY_DB].view(
            "_all_docs", startkey="account:", endkey="account:\ufff0", include_docs=True
        )
        found = [
            (str(r.doc["username"]).lower(), str(r.doc.get("display_name") or r.doc["username"]))
            for r in rows
            if r.doc
            and r.doc.get("type") == "account"
            and r.doc.get("unit") == unit
            and r.doc.get("role") in roles
            and not r.doc.get("disabled")
            and r.doc.get("username")
        ]
    return sorted(found)


# --- offers and the calendar grid ------------------------------------------------------------


def set_offers(
    sessions: sessionmaker[Session],
    calendar: WorkCalendar,
    today: date,
    staff: dict[str, str],
    days: Sequence[date],
    offered: set[Slot],
) -> tuple[set[date], list[Slot]]:
    """Make the offers of ``staff`` (username → name) on ``days`` exactly ``offered`` (past
    and non-working days are left alone); return the days changed and the booked slots that
    stay offered (a booked offer is not withdrawn)."""
    editable = [d for d in days if d >= today and calendar.is_workday(d)]
    changed: set[date] = set()
    kept: list[Slot] = []
    if not editable or not staff:
        return changed, kept
    with sessions.begin() as session:
        rows = session.execute(
            select(StaffAvailability).where(
                StaffAvailability.staff.in_(staff), StaffAvailability.day.in_(editable)
            )
        ).scalars()
        have = {Slot(r.day, r.period, r.staff) for r in rows}
        booked = {
            Slot(b.day, b.period, b.staff)
            for b in session.execute(
                select(VisitBooking).where(
                    VisitBooking.staff.in_(staff), VisitBooking.day.in_(editable)
                )
            ).scalars()
        }
        want = {s for s in offered if s.staff in staff and s.day in editable}
        for slot in sorted(want - have):
            session.add(StaffAvailability(staff=slot.staff, day=slot.day, period=slot.period,
                                          staff_name=staff[slot.staff]))  # fmt: skip
            changed.add(slot.day)
        for slot in sorted(have - want):
            if slot in booked:
                kept.append(slot)
                continue
            session.execute(
                delete(StaffAvailability).where(
                    StaffAvailability.staff == slot.staff,
                    StaffAvailability.day == slot.day,
                    StaffAvailability.period == slot.period,
                )
            )
            changed.add(slot.day)
    return changed, kept


@dataclass(frozen=True)
class Cell:
    """One slot of the calendar grid: offered or not, and the visit booked in it."""

    slot: Slot
    offered: bool
    case_number: str = ""
    village: str | None = None
    outcome: str | None = None

    @property
    def free(self) -> bool:
        """Offered and not booked."""
        return self.offered and not self.case_number


def week_grid(session: Session, days: Sequence[date], staff: Iterable[str]) -> dict[Slot, Cell]:
    """Every (day, period, staff) cell of ``days``."""
    staff = list(staff)
    offers = {
        Slot(r.day, r.period, r.staff)
        for r in session.execute(
            select(StaffAvailability).where(StaffAvailability.day.in_(days))
        ).scalars()
    }
    bookings = session.execute(
        select(VisitBooking, VisitRow.case_number, VisitRow.village)
        .join(
            VisitRow,
            (VisitRow.case_id == VisitBooking.case_id)
            & (VisitRow.visit_id == VisitBooking.visit_id),
            isouter=True,
        )
        .where(VisitBooking.day.in_(days))
    ).all()
    booked = {Slot(b.day, b.period, b.staff): (n or "?", v, b.outcome) for b, n, v in bookings}
    grid: dict[Slot, Cell] = {}
    for day in days:
        for period in PERIODS:
            for who in staff:
                slot = Slot(day, period, who)
                number, village, outcome = booked.get(slot, ("", None, None))
                grid[slot] = Cell(slot, slot in offers, number, village, outcome)
    return grid


def free_slots(session: Session, days: Sequence[date]) -> list[Slot]:
    """The offered slots of ``days`` nobody has booked, by day, period and staff."""
    taken = select(VisitBooking.staff).where(
        VisitBooking.staff == StaffAvailability.staff,
        VisitBooking.day == StaffAvailability.day,
        VisitBooking.period == StaffAvailability.period,
    )
    rows = session.execute(
        select(StaffAvailability).where(StaffAvailability.day.in_(days), ~taken.exists())
    ).scalars()
    return sorted(Slot(r.day, r.period, r.staff) for r in rows)


def _staff_name(session: Session, slot: Slot) -> str:
    row = session.get(StaffAvailability, (slot.staff, slot.day, slot.period))
    return row.staff_name if row is not None else slot.staff


# --- taking and giving back slots -------------------------------------------------------------


def book_slot(sessions: sessionmaker[Session], slot: Slot, case_id: str, visit_id: str) -> None:
    """Take ``slot`` for the visit, or raise SlotTaken / NotOffered. One INSERT: the slot is
    the booking's primary key, so of concurrent attempts exactly one commits."""
    try:
        with sessions.begin() as session:
            session.add(VisitBooking(staff=slot.staff, day=slot.day, period=slot.period,
                                     case_id=case_id, visit_id=visit_id, outcome=None,
                                     booked_at=datetime.now(UTC)))  # fmt: skip
    except IntegrityError:
        with sessions() as session:
            offered = session.get(StaffAvailability, (slot.staff, slot.day, slot.period))
        if offered is None:
            raise NotOffered(f"{slot.staff} 未在 {_slot_label(slot)} 提供上门服务") from None
        raise SlotTaken(f"{_slot_label(slot)} 的这个时段刚被别人约走了, 请另选时段") from None


def release_slot(sessions: sessionmaker[Session], slot: Slot, case_id: str, visit_id: str) -> None:
    """Give ``slot`` back if this visit holds it."""
    with sessions.begin() as session:
        session.execute(
            delete(VisitBooking).where(
                VisitBooking.staff == slot.staff,
                VisitBooking.day == slot.day,
                VisitBooking.period == slot.period,
                VisitBooking.case_id == case_id,
                VisitBooking.visit_id == visit_id,
            )
        )


def _slot_label(slot: Slot) -> str:
    return f"{slot.day.isoformat()} {PERIODS.get(slot.period, slot.period)}"


# --- the visits of a case ---------------------------------------------------------------------


def _facts(case: Case) -> dict[str, Any]:
    """What the calendar keeps of the case for its lists and route sheets."""
    applicant = case.applicant
    phone = applicant.contact_phone if isinstance(applicant, Organisation) else applicant.phone
    return {
        "case_number": case.case_number,
        "village": case.village,
        "address": applicant.address,
        "applicant_name": applicant.name,
        "phone": phone,
        "item_name": case.item_name,
    }


def _upsert_visit(session: Session, case: Case, visit_id: str, **values: Any) -> None:
    row = session.get(VisitRow, (case.id, visit_id))
    values["updated_at"] = datetime.now(UTC)
    if row is None:
        defaults: dict[str, Any] = {"staff": None, "staff_name": "", "note": ""}
        session.add(VisitRow(case_id=case.id, visit_id=visit_id,
                             **{**defaults, **_facts(case), **values}))  # fmt: skip
    else:
        for key, value in values.items():
            setattr(row, key, value)


def visit_status(sessions: sessionmaker[Session], state: CaseState, visit_id: str) -> str | None:
    """Where the visit stands: the calendar's own row (written at once) before the fold's
    (which follows CouchDB a moment later)."""
    with sessions() as session:
        row = session.get(VisitRow, (state.case_id, visit_id))
    if row is not None:
        return row.status
    found = next((v for v in state.visits if v.visit_id == visit_id), None)
    return found.status.value if found is not None else None


@dataclass
class Dispatch:
    """The township's dispatch: its calendar (SQL), case database (CouchDB) and writer."""

    sessions: sessionmaker[Session]
    database: Any
    writer: EventWriter
    calendar: WorkCalendar
    today: date = field(default_factory=today_here)
    touched: set[date] = field(default_factory=set)
    """The days whose bookings changed (their availability is to be published again)."""

    def schedule(
        self,
        case: Case,
        state: CaseState,
        slot: Slot,
        *,
        author: str,
        visit_id: str | None = None,
        note: str = "",
    ) -> str:
        """Book ``slot`` for a new visit of the case, or move visit ``visit_id`` there; write
        ``visit_scheduled``; return the visit id."""
        if state.status not in ALLOWED[EventKind.VISIT_SCHEDULED]:
            raise VisitRefused(f"办件{state.status.label}, 不能安排上门")
        check_visit_day(self.calendar, slot.day, self.today)
        previous: VisitBooking | None = None
        if visit_id is None:
            visit_id = "v" + uuid.uuid4().hex[:12]
        else:
            status = visit_status(self.sessions, state, visit_id)
            if status is None:
                raise VisitRefused("没有这次上门服务")
            if status in (VisitStatus.CANCELLED.value, VisitStatus.DONE.value):
                raise VisitRefused(f"这次上门服务{VisitStatus(status).label}, 不能再安排")
            with self.sessions() as session:
                previous = session.execute(
                    select(VisitBooking).where(
                        VisitBooking.case_id == case.id,
                        VisitBooking.visit_id == visit_id,
                        VisitBooking.outcome.is_(None),
                    )
                ).scalar_one_or_none()
            if previous is not None and Slot(previous.day, previous.period, previous.staff) == slot:
                return visit_id  # already there
        book_slot(self.sessions, slot, case.id, visit_id)
        with self.sessions() as session:
            name = _staff_name(session, slot)
        try:
            self.writer.append(
                self.database, case,
                [VisitScheduled(visit_id=visit_id, day=slot.day, period=slot.period,
                                staff=slot.staff, staff_name=name, note=note)],
                author=author, after=state.last_stamp,
            )  # fmt: skip
        except BaseException:
            release_slot(self.sessions, slot, case.id, visit_id)
            raise
        self.touched.add(slot.day)
        with self.sessions.begin() as session:
            if previous is not None:
                self.touched.add(previous.day)
                session.execute(
                    delete(VisitBooking).where(
                        VisitBooking.staff == previous.staff,
                        VisitBooking.day == previous.day,
                        VisitBooking.period == previous.period,
                        VisitBooking.case_id == case.id,
                    )
                )
            _upsert_visit(session, case, visit_id, status=VisitStatus.SCHEDULED.value,
                          day=slot.day, period=slot.period, staff=slot.staff, staff_name=name,
                          note="")  # fmt: skip
        return visit_id

    def cancel(
        self, case: Case, state: CaseState, visit_id: str, *, author: str, reason: str = ""
    ) -> None:
        """Write ``visit_cancelled`` and free the visit's slot."""
        status = visit_status(self.sessions, state, visit_id)
        if status is None:
            raise VisitRefused("没有这次上门服务")
        if status in (VisitStatus.CANCELLED.value, VisitStatus.DONE.value):
            raise VisitRefused(f"这次上门服务{VisitStatus(status).label}, 不能取消")
        self.writer.append(self.database, case, [VisitCancelled(visit_id=visit_id, reason=reason)],
                           author=author, after=state.last_stamp)  # fmt: skip
        with self.sessions.begin() as session:
            held = session.execute(
                select(VisitBooking).where(
                    VisitBooking.case_id == case.id,
                    VisitBooking.visit_id == visit_id,
                    VisitBooking.outcome.is_(None),
                )
            ).scalar_one_or_none()
            if held is not None:
                session.delete(held)
                self.touched.add(held.day)
            values: dict[str, Any] = {"status": VisitStatus.CANCELLED.value}
            if session.get(VisitRow, (case.id, visit_id)) is None:  # known from the fold only
                values["day"], values["period"] = _requested_day(state, visit_id)
            _upsert_visit(session, case, visit_id, **values)

    def record(
        self,
        case: Case,
        state: CaseState,
        visit_id: str,
        outcome: VisitOutcome,
        *,
        author: str,
        note: str = "",
    ) -> None:
        """Write ``visit_recorded``; the booking keeps the outcome (absent and more materials
        are rescheduled as a move of the same visit to a new slot)."""
        status = visit_status(self.sessions, state, visit_id)
        if status != VisitStatus.SCHEDULED.value:
            label = VisitStatus(status).label if status else "不存在"
            raise VisitRefused(f"这次上门服务{label}, 不能记录上门结果")
        if state.status not in ALLOWED[EventKind.VISIT_RECORDED]:
            raise VisitRefused(f"办件{state.status.label}, 不能记录上门结果")
        self.writer.append(self.database, case,
                           [VisitRecorded(visit_id=visit_id, outcome=outcome, note=note)],
                           author=author, after=state.last_stamp)  # fmt: skip
        with self.sessions.begin() as session:
            session.execute(
                update(VisitBooking)
                .where(
                    VisitBooking.case_id == case.id,
                    VisitBooking.visit_id == visit_id,
                    VisitBooking.outcome.is_(None),
                )
                .values(outcome=outcome.value)
            )
            _upsert_visit(session, case, visit_id, status=outcome_status(outcome).value)


def outcome_status(outcome: VisitOutcome) -> VisitStatus:
    """The visit status an outcome leaves."""
    return {
        VisitOutcome.DONE: VisitStatus.DONE,
        VisitOutcome.ABSENT: VisitStatus.ABSENT,
        VisitOutcome.MORE_MATERIALS: VisitStatus.MORE_MATERIALS,
    }[outcome]


def _requested_day(state: CaseState, visit_id: str) -> tuple[date, str]:
    found = next((v for v in state.visits if v.visit_id == visit_id), None)
    return (found.day, found.period) if found is not None else (date.min, "")


# --- published availability ------------------------------------------------------------------


def availability_doc_id(township: str, day: date) -> str:
    """The id of ``township``'s availability document of ``day``."""
    return f"visit_availability:{township}:{day.isoformat()}"


def availability_doc(session: Session, township: str, day: date) -> dict[str, Any]:
    """The availability document of ``day`` (without ``_rev``): capacity and free slots per
    period, nothing about who."""
    offered = dict(
        session.execute(
            select(StaffAvailability.period, func.count())
            .where(StaffAvailability.day == day)
            .group_by(StaffAvailability.period)
        ).all()
    )
    booked = dict(
        session.execute(
            select(VisitBooking.period, func.count())
            .where(VisitBooking.day == day)
            .group_by(VisitBooking.period)
        ).all()
    )
    periods = {
        period: {
            "label": label,
            "capacity": int(offered.get(period, 0)),
            "free": max(0, int(offered.get(period, 0)) - int(booked.get(period, 0))),
        }
        for period, label in PERIODS.items()
    }
    return {
        "_id": availability_doc_id(township, day),
        "type": "visit_availability",
        "township": township,
        "day": day.isoformat(),
        "periods": periods,
    }


def publish_availability(
    sessions: sessionmaker[Session], database: Any, township: str, days: Iterable[date]
) -> int:
    """Write ``township``'s availability documents of ``days`` where they changed; return how
    many were written. The current revision is read *before* counting, so a concurrent writer
    with fresher counts makes this save conflict, and the retry counts again."""
    written = 0
    for day in sorted(set(days)):
        for attempt in range(PUBLISH_TRIES):
            with couch_errors():
                current = database.get(availability_doc_id(township, day))
            with sessions() as session:
                doc = availability_doc(session, township, day)
            if current is not None:
                if {k: current.get(k) for k in doc} == doc:
                    break
                doc["_rev"] = current["_rev"]
            doc["updated_at"] = datetime.now(UTC).isoformat()
            try:
                with couch_errors():
                    database.save(doc)
            except CouchConflict:
                if attempt == PUBLISH_TRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
                continue
            written += 1
            break
    return written


# --- route sheets -------------------------------------------------------------------------------


class RouteStop(msgspec.Struct, frozen=True, kw_only=True):
    """One visit on a staff member's route of the day."""

    period: str
    case_number: str
    village: str | None
    address: str
    applicant_name: str
    phone: str
    item_name: str
    outcome: str | None


def route_sheet(
    session: Session, staff: str, day: date
) -> list[tuple[str | None, list[RouteStop]]]:
    """``staff``'s visits on ``day``, grouped by village (counter cases last), each group by
    period then case number."""
    rows = session.execute(
        select(VisitBooking, VisitRow)
        .join(
            VisitRow,
            (VisitRow.case_id == VisitBooking.case_id)
            & (VisitRow.visit_id == VisitBooking.visit_id),
        )
        .where(VisitBooking.staff == staff, VisitBooking.day == day)
    ).all()
    groups: dict[str | None, list[RouteStop]] = defaultdict(list)
    for booking, visit in rows:
        groups[visit.village].append(
            RouteStop(period=booking.period, case_number=visit.case_number, village=visit.village,
                      address=visit.address, applicant_name=visit.applicant_name,
                      phone=visit.phone, item_name=visit.item_name, outcome=booking.outcome)
        )  # fmt: skip
    order = list(PERIODS)
    return [
        (village, sorted(stops, key=lambda s: (order.index(s.period), s.case_number)))
        for village, stops in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]


# --- requested visits ---------------------------------------------------------------------------


def requested_visits(session: Session) -> list[VisitRow]:
    """Requests not confirmed yet, for staff to pick another period; oldest day first."""
    return list(
        session.execute(
            select(VisitRow)
            .where(VisitRow.status == VisitStatus.REQUESTED.value)
            .order_by(VisitRow.day, VisitRow.period, VisitRow.case_number)
        ).scalars()
    )


_examined: weakref.WeakKeyDictionary[sessionmaker[Session], dict[str, str]] = (
    weakref.WeakKeyDictionary()
)
"""Per calendar database, in this process: the latest stamp of each open case when it was last
looked at for requests (so a round reads only the cases that changed; a restart reads all once)."""
_examined_lock = threading.Lock()
_CHUNK = 500


def _discover_requests(sessions: sessionmaker[Session], unit: str) -> None:
    """File every ``visit_requested`` of the unit's open cases that the calendar lacks, reading
    only the cases whose latest stamp moved since the last round."""
    with _examined_lock:
        seen = _examined.setdefault(sessions, {})
    with sessions() as session:
        stamps = session.execute(
            select(CaseRow.case_id, CaseRow.last_hlc).where(
                inbox_scope(unit), CaseRow.status.in_([s.value for s in OPEN])
            )
        ).all()
        changed = {c: h for c, h in stamps if seen.get(c) != h}
        ids = list(changed)
        found: list[Any] = []
        for i in range(0, len(ids), _CHUNK):
            found += session.execute(
                select(CaseRow.state, CaseDoc.doc)
                .join(CaseDoc, CaseDoc.case_id == CaseRow.case_id)
                .where(
                    CaseRow.case_id.in_(ids[i : i + _CHUNK]),
                    cast(CaseRow.state, Text).like("%visit_requested%"),
                )
            ).all()
        known = {
            (c, v)
            for c, v in session.execute(
                select(VisitRow.case_id, VisitRow.visit_id).where(
                    VisitRow.case_id.in_([str(s["case_id"]) for s, _ in found])
                )
            ).all()
        }
    for state_json, doc in found:
        state = msgspec.convert(state_json, CaseState, strict=False)
        for visit in state.visits:
            if (
                visit.status is not VisitStatus.REQUESTED
                or (state.case_id, visit.visit_id) in known
            ):
                continue
            case = case_from_doc(doc)
            try:
                with sessions.begin() as session:
                    _upsert_visit(session, case, visit.visit_id, status=visit.status.value,
                                  day=visit.day, period=_period_or_as_is(visit.period))  # fmt: skip
            except IntegrityError:  # filed at the same moment by another round
                pass
    with _examined_lock:
        seen.update(changed)


def confirm_requested_visits(
    sessions: sessionmaker[Session],
    server: Any,
    database_name: str,
    writer: EventWriter,
    *,
    today: date | None = None,
    calendar: WorkCalendar | None = None,
) -> int:
    """Confirm the visits requested at kiosks (or by citizens) whose period still has a free
    slot — the case's assignee first, then whoever has the fewest visits that day — by writing
    ``visit_scheduled``; leave the others listed with why. Return how many were confirmed."""
    _discover_requests(sessions, writer.unit)
    with sessions() as session:
        waiting = requested_visits(session)
    if not waiting:
        return 0
    if calendar is None:
        calendar = district_rules(server)[0]
    dispatch = Dispatch(sessions, server[database_name], writer, calendar, today or today_here())
    confirmed = 0
    for visit in waiting:
        with sessions() as session:
            found = session.execute(
                select(CaseRow.state, CaseDoc.doc)
                .join(CaseDoc, CaseDoc.case_id == CaseRow.case_id)
                .where(CaseRow.case_id == visit.case_id)
            ).first()
        if found is None:
            continue
        state = msgspec.convert(found[0], CaseState, strict=False)
        case = case_from_doc(found[1])
        folded = next((v for v in state.visits if v.visit_id == visit.visit_id), None)
        if folded is None or folded.status is not VisitStatus.REQUESTED:
            continue  # moved on by events written elsewhere; left for staff to see
        if state.status not in ALLOWED[EventKind.VISIT_SCHEDULED]:
            _note(sessions, visit, f"办件{state.status.label}, 不再安排上门")
            continue
        try:
            check_visit_day(calendar, visit.day, dispatch.today)
        except DayRefused as exc:
            _note(sessions, visit, f"{exc} — 请另选时段")
            continue
        placed = place_visit(dispatch, case, state, visit.visit_id, visit.day, visit.period,
                             author=AUTO_CONFIRMER, note="按申请时段自动确认",
                             requested_only=True)  # fmt: skip
        if placed is not None:
            confirmed += 1
        else:
            label = f"{visit.day.isoformat()} {PERIODS.get(visit.period, visit.period)}"
            _note(sessions, visit, f"{label} 已无空闲的上门人员, 请另选时段")
    if dispatch.touched:
        publish_availability(sessions, dispatch.database, writer.unit, dispatch.touched)
    return confirmed


_VISIT_LOCKS = tuple(threading.RLock() for _ in range(64))


def visit_lock(case_id: str, visit_id: str) -> threading.RLock:
    """The lock under which this process places, moves or cancels one visit, so that the
    catch-up's confirmation and a booking through the API never give one visit two slots."""
    return _VISIT_LOCKS[hash((case_id, visit_id)) % len(_VISIT_LOCKS)]


def held_slot(sessions: sessionmaker[Session], case_id: str, visit_id: str) -> Slot | None:
    """The slot the visit holds now (not yet visited), if any."""
    with sessions() as session:
        row = session.execute(
            select(VisitBooking).where(
                VisitBooking.case_id == case_id,
                VisitBooking.visit_id == visit_id,
                VisitBooking.outcome.is_(None),
            )
        ).scalar_one_or_none()
    return None if row is None else Slot(row.day, row.period, row.staff)


def place_visit(
    dispatch: Dispatch,
    case: Case,
    state: CaseState,
    visit_id: str,
    day: date,
    period: str,
    *,
    author: str,
    note: str = "",
    requested_only: bool = False,
) -> Slot | None:
    """Take a free slot of ``day``/``period`` for visit ``visit_id`` — the case's assignee
    first, then whoever has the fewest visits that day — and write ``visit_scheduled`` (a move
    if the visit held another slot, freed only after); return the slot, the one it already
    holds in that period, or None if none is free. With ``requested_only`` a visit that is no
    longer requested is left where it is (its slot, or None, is returned)."""
    with visit_lock(case.id, visit_id):
        held = held_slot(dispatch.sessions, case.id, visit_id)
        if held is not None and (held.day, held.period) == (day, _period_or_as_is(period)):
            return held
        if requested_only:
            status = visit_status(dispatch.sessions, state, visit_id)
            if status != VisitStatus.REQUESTED.value:
                return held
        for slot in _candidates(dispatch.sessions, day, period, state.assignee):
            try:
                dispatch.schedule(case, state, slot, author=author, visit_id=visit_id, note=note)
            except (SlotTaken, NotOffered):
                continue  # taken meanwhile: the next one
            return slot
    return None


def _period_or_as_is(text: str) -> str:
    try:
        return parse_period(text)
    except InvalidInput:
        return text[:8]


def _note(sessions: sessionmaker[Session], visit: VisitRow, note: str) -> None:
    with sessions.begin() as session:
        session.execute(
            update(VisitRow)
            .where(VisitRow.case_id == visit.case_id, VisitRow.visit_id == visit.visit_id)
            .values(note=note)
        )


def _candidates(
    sessions: sessionmaker[Session], day: date, period: str, assignee: str | None
) -> list[Slot]:
    """The free slots of ``day``/``period``: the assignee's first, then by fewest visits."""
    try:
        period = parse_period(period)
    except InvalidInput:
        return []
    with sessions() as session:
        free = [s for s in free_slots(session, [day]) if s.period == period]
        load = dict(
            session.execute(
                select(VisitBooking.staff, func.count())
                .where(VisitBooking.day == day)
                .group_by(VisitBooking.staff)
            ).all()
        )
    return sorted(free, key=lambda s: (s.staff != assignee, load.get(s.staff, 0), s.staff))
