"""Citizens' home-visit bookings that the district asks this node to confirm (issue 6).

The district server is the citizens' address; this node owns the visit calendar and is its
single writer. The district calls in server to server with ``Authorization: Bearer <key>``;
the key's sha256 is published by the district as ``township_node:<code>`` in the replicated
``directory`` (no other configuration here).

A booking carries the documents the district wrote into its ``district`` database (the case,
``submitted`` and ``visit_requested``, with their revisions). The node stores them as they are
(``new_edits=false``: the replicated copies arriving later are the same revisions, no
conflict), folds the case from them (the read model catches up in the background), and
places the visit exactly as the catch-up confirms a kiosk's
request (``township.visits.place_visit``): a free staff slot of the period, ``visit_scheduled``
written by this node's writer, the day's availability republished. When no slot is free the
case keeps its request, which the catch-up lists for staff to place.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.calendar import WorkCalendar
from core.cases import (
    Case,
    EventKind,
    VisitRequested,
    case_from_doc,
    event_from_doc,
)
from core.catalogue import Mode
from core.errors import InvalidInput
from core.fold import CaseState, VisitStatus, fold
from core.hierarchy import Level, level_of
from sync.couch import couch_errors, get_document
from sync.errors import DocNotFound
from sync.readmodel import CaseDoc, CaseRow
from sync.writer import EventsNotSaved, EventWriter
from township.errors import BookingInvalid, PeriodFull, Unauthenticated
from township.models import VisitRow
from township.read_model import project_township
from township.staff import DIRECTORY_DB
from township.visits import (
    AUTO_CONFIRMER,
    PERIODS,
    Dispatch,
    Slot,
    check_visit_day,
    held_slot,
    place_visit,
    publish_availability,
    visit_lock,
    visit_status,
)

__all__ = ["SLOT_TAKEN", "Placement", "BookingDesk", "authenticate_district", "node_doc_id"]

SLOT_TAKEN = "该时段已约满, 请另选时段"
"""What the district tells a citizen whose period filled up first (contract, 409)."""
UNAUTHORIZED = "未授权: 缺少或错误的区平台密钥"
BOOKED_NOTE = "市民预约, 经区平台确认"
_EVENT_KINDS = frozenset({EventKind.SUBMITTED, EventKind.VISIT_REQUESTED})
_projecting = threading.Lock()


def node_doc_id(code: str) -> str:
    """The id of the directory document that holds this node's key hash."""
    return f"township_node:{code}"


def authenticate_district(server: Any, code: str, authorization: str | None) -> None:
    """Raise Unauthenticated unless ``authorization`` is ``Bearer <key>`` with sha256(key) the
    ``key_sha256`` the district published for this node (compared in constant time)."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    try:
        with couch_errors(every_status=True):
            doc = get_document(server[DIRECTORY_DB], node_doc_id(code))
    except DocNotFound:  # no directory yet
        doc = None
    expected = ""
    if doc is not None and doc.get("type") == "township_node" and doc.get("code") == code:
        expected = str(doc.get("key_sha256") or "").strip().lower()
    given = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    matches = hmac.compare_digest(given.encode(), expected.encode("utf-8", "replace"))
    if not (matches and expected and key and scheme.lower() == "bearer"):
        raise Unauthenticated(UNAUTHORIZED)


@dataclass(frozen=True)
class Placement:
    """Where a booked visit stands on the calendar; ``created`` if this request placed it."""

    visit_id: str
    day: date
    period: str
    staff_name: str
    case_number: str
    created: bool


@contextmanager
def _as_invalid() -> Iterator[None]:
    """InvalidInput (a bad payload, period or document) as the API's 400 ``invalid``."""
    try:
        yield
    except InvalidInput as exc:
        raise BookingInvalid("；".join(e.message for e in exc.errors)) from exc


def _period(text: str) -> str:
    if text not in PERIODS:
        raise BookingInvalid("时段须为 am (上午) 或 pm (下午)")
    return text


@dataclass
class BookingDesk:
    """This node's side of the booking API: the district's documents in, the calendar's
    answer out."""

    sessions: sessionmaker[Session]
    server: Any
    code: str
    database_name: str
    writer: EventWriter
    calendar: WorkCalendar
    today: date

    @property
    def database(self) -> Any:
        """The node's case database (``township``; ``district`` at the district's centre)."""
        return self.server[self.database_name]

    # -- the three calls -------------------------------------------------------------------

    def book(
        self,
        case_doc: Mapping[str, Any],
        event_docs: Sequence[Mapping[str, Any]],
        visit_id: str,
        day: date,
        period: str,
    ) -> Placement:
        """Store the district's documents, project them and place the requested visit in a
        free slot of ``day``/``period``; an already placed visit is answered as it stands."""
        period = _period(period)
        case = self._district_documents(case_doc, event_docs, visit_id, day, period)
        loaded = self._load(case.id)
        if loaded is not None:
            placed = self._as_placed(loaded[0], loaded[1], visit_id)
            if placed is not None:
                return placed
        check_visit_day(self.calendar, day, self.today)
        self._store([case_doc, *event_docs])
        # A case new to this node: its documents are all in the body, so it is folded here
        # rather than by projecting every change (which concurrent bookings would queue on).
        state = fold(case, [dict(d) for d in event_docs], self.calendar, self.today)
        return self._place(case, state, visit_id, day, period)

    def move(self, visit_id: str, case_id: str, day: date, period: str) -> Placement:
        """Place the visit in a free slot of ``day``/``period``; its old slot is freed only
        once the new one is taken (none free: the old one is kept)."""
        period = _period(period)
        case, state = self._case(case_id)
        status = visit_status(self.sessions, state, visit_id)
        if status is None:
            raise BookingInvalid("没有这次上门服务")
        held = held_slot(self.sessions, case.id, visit_id)
        if held is not None and (held.day, held.period) == (day, period):
            return self._placement(case, visit_id, held, created=False)
        check_visit_day(self.calendar, day, self.today)
        return self._place(case, state, visit_id, day, period)

    def cancel(self, visit_id: str, case_id: str, reason: str) -> None:
        """Write ``visit_cancelled`` and free the visit's slot at once (already cancelled:
        nothing to do)."""
        case, state = self._case(case_id)
        dispatch = self._dispatch()
        try:
            with visit_lock(case.id, visit_id), _as_invalid():
                if visit_status(self.sessions, state, visit_id) == VisitStatus.CANCELLED.value:
                    return
                dispatch.cancel(case, state, visit_id, author=AUTO_CONFIRMER, reason=reason)
        finally:
            self._publish(dispatch)
        self._project()

    # -- steps -------------------------------------------------------------------------------

    def _district_documents(
        self,
        case_doc: Mapping[str, Any],
        event_docs: Sequence[Mapping[str, Any]],
        visit_id: str,
        day: date,
        period: str,
    ) -> Case:
        """The case, once its documents are what the contract says: revisions, this unit's
        door-to-door case, ``submitted`` and the ``visit_requested`` of ``visit_id`` for
        ``day``/``period``."""
        with _as_invalid():
            case = case_from_doc(case_doc)
            events = [event_from_doc(doc) for doc in event_docs]
        for doc in (case_doc, *event_docs):
            if not isinstance(doc.get("_rev"), str) or not doc["_rev"] or doc.get("_deleted"):
                raise BookingInvalid(f"文档 {doc.get('_id', '?')} 须带 _rev (区平台写入的版本)")
        if any(e.case_id != case.id or e.kind not in _EVENT_KINDS for e in events):
            raise BookingInvalid("事件须为本办件的 submitted 与 visit_requested")
        requests = [
            e.payload
            for e in events
            if isinstance(e.payload, VisitRequested) and e.payload.visit_id == visit_id
        ]
        if len(requests) != 1:
            raise BookingInvalid(f"没有上门申请 {visit_id}")
        self._check_ours(case)
        if case.mode is not Mode.DOOR_TO_DOOR:
            raise BookingInvalid(f"{case.item_name} 不是上门办的办件")
        asked = requests[0]
        if (asked.day, asked.period) != (day, period):
            raise BookingInvalid("预约时段与上门申请的时段不一致")
        return case

    def _check_ours(self, case: Case) -> None:
        """Refuse a case this node's calendar does not serve (as its inbox scopes cases)."""
        if level_of(self.code) is Level.DISTRICT:
            ours = case.handling_unit == self.code
        else:
            ours = case.township == self.code
        if not ours:
            raise BookingInvalid(f"办件 {case.case_number} 不属于本镇街")

    def _store(self, docs: Sequence[Mapping[str, Any]]) -> None:
        """Write the district's documents with their own revisions (``new_edits=false``)."""
        with couch_errors():
            results = self.database.update([dict(d) for d in docs], new_edits=False)
        failed = [doc_id for ok, doc_id, _ in results if not ok]
        if failed:
            raise EventsNotSaved(f"CouchDB did not store {len(failed)} document(s): {failed[:3]}")

    def _project(self) -> None:
        """Catch the read model up (one follower of this process at a time: concurrent
        bookings would otherwise all read the same changes)."""
        with _projecting:
            project_township(self.sessions, self.server, self.database_name)

    def _load(self, case_id: str) -> tuple[Case, CaseState] | None:
        with self.sessions() as session:
            found = session.execute(
                select(CaseRow.state, CaseDoc.doc)
                .join(CaseDoc, CaseDoc.case_id == CaseRow.case_id)
                .where(CaseRow.case_id == case_id)
            ).first()
        if found is None:
            return None
        return case_from_doc(found[1]), msgspec.convert(found[0], CaseState, strict=False)

    def _case(self, case_id: str) -> tuple[Case, CaseState]:
        """A case of this node from the read model (caught up first if it is not there)."""
        loaded = self._load(case_id)
        if loaded is None:
            self._project()
            loaded = self._load(case_id)
        if loaded is None:
            raise BookingInvalid(f"没有办件 {case_id}")
        self._check_ours(loaded[0])
        return loaded

    def _dispatch(self) -> Dispatch:
        return Dispatch(self.sessions, self.database, self.writer, self.calendar, self.today)

    def _publish(self, dispatch: Dispatch) -> None:
        if dispatch.touched:
            publish_availability(self.sessions, self.database, self.code, dispatch.touched)

    def _place(
        self, case: Case, state: CaseState, visit_id: str, day: date, period: str
    ) -> Placement:
        """Take a free slot for the visit as the catch-up would; PeriodFull if none is free."""
        dispatch = self._dispatch()
        try:
            with _as_invalid():
                slot = place_visit(dispatch, case, state, visit_id, day, period,
                                   author=AUTO_CONFIRMER, note=BOOKED_NOTE)  # fmt: skip
        finally:
            self._publish(dispatch)
        if slot is None:
            raise PeriodFull(SLOT_TAKEN)
        return self._placement(case, visit_id, slot, created=bool(dispatch.touched))

    def _as_placed(self, case: Case, state: CaseState, visit_id: str) -> Placement | None:
        """The visit's placement if it is scheduled already (a retried booking)."""
        if visit_status(self.sessions, state, visit_id) != VisitStatus.SCHEDULED.value:
            return None
        held = held_slot(self.sessions, case.id, visit_id)
        if held is not None:
            return self._placement(case, visit_id, held, created=False)
        folded = next((v for v in state.visits if v.visit_id == visit_id), None)
        if folded is None:
            return None
        return Placement(visit_id, folded.day, folded.period, folded.staff_name or folded.staff,
                         case.case_number, created=False)  # fmt: skip

    def _placement(self, case: Case, visit_id: str, slot: Slot, *, created: bool) -> Placement:
        with self.sessions() as session:
            row = session.get(VisitRow, (case.id, visit_id))
        name = row.staff_name if row is not None and row.staff == slot.staff else ""
        return Placement(visit_id, slot.day, slot.period, name or slot.staff, case.case_number,
                         created)  # fmt: skip
