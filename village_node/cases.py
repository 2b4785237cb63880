"""Cases at the kiosk: intake (applicant, pre-review, routing, save) and the village's cases.

Handlers stay thin: they turn the posted form into a dict of strings and call ``CaseDesk``.
Saving writes the ``case``, its ``submitted`` event and the kiosk's own ``_local/kiosk`` record
(per-origin counter, HLC, remembered intake keys) in one ``bulk_docs`` transaction, so a kiosk
killed mid-save keeps either all three or none, and a restarted kiosk never reuses a counter.
The counter comes from ``_local/kiosk``; as a cheap safety net the save checks that the next
case and event ids are unused, and only if one is taken (the local record was lost) scans the
store's changes for the highest counter.

The cases list, the case lookup and the duplicate check read the kiosk's read model: the
store projected into SQL by ``sync.projection``, as the townships do, in ``readmodel.sqlite3``
beside the store. It is a disposable cache, rebuilt from the store if deleted, so its tables
are made with ``create_all`` and need no migrations. It is caught up before every read (one
``_changes`` call when nothing changed) and refolded once a day. Benchmarks: see
``benchmarks/kiosk.py``. Photographed or uploaded materials are attachments of the case
document (``village_node.attachments`` stages and compresses them), saved in the same transaction.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import func, select, text

from core.calendar import WorkCalendar, calendar_from_settings
from core.cases import (
    CHINA_TIME,
    RATING_LABELS,
    Accepted,
    Case,
    CaseEvent,
    Completed,
    Delivered,
    Delivery,
    EventKind,
    EventPayload,
    MissingMaterial,
    Origin,
    Person,
    Rated,
    RatingChannel,
    Recipient,
    Resubmitted,
    Returned,
    Submitted,
    VideoRequested,
    VisitRequested,
    case_from_doc,
    case_to_doc,
    event_to_doc,
    is_bad_rating,
    local_date,
    new_event,
    parse_case_id,
)
from core.cases import case_id as make_case_id
from core.cases import event_id as make_event_id
from core.catalogue import CatalogueItem, Mode
from core.clock import Hlc, HlcClock
from core.errors import InvalidInput
from core.fold import OPEN, CaseState, CaseStatus, RatingRecord, VisitStatus, fold
from core.identity import mask_resident_id
from core.intake import (
    FLAGS,
    Intake,
    Outcome,
    choose_mode,
    draft_case,
    handling_unit,
    new_intake_key,
    parse_intake,
    review_materials,
)
from core.routing import route_options
from core.sla import Colour, SlaThresholds, colour_of, thresholds_from_settings
from core.visits import PERIODS, parse_period
from sync.errors import DocNotFound
from sync.projection import project, refold_all
from sync.readmodel import CaseDoc, CaseEventDoc, contains_clause
from sync.readmodel import CaseRow as CaseTable
from sync.readmodel import metadata as read_model_metadata
from sync.sql import make_engine, make_sessionmaker
from sync.store import SQLiteStore
from village_node.enrolment import KIOSK_LOCAL
from village_node.errors import KioskError, NotFoundHere
from village_node.settings import Enrolment

__all__ = [
    "FLAGS",
    "Intake",
    "KioskOutcome",
    "CaseRow",
    "CaseDesk",
    "new_intake_key",
    "Action",
    "CaseActions",
    "DELIVERY_CHOICES",
    "RATING_TAGS",
    "RATEABLE",
    "case_actions",
    "completion_refusal",
    "video_refusal",
    "kiosk_rating",
    "notice_lines",
    "resubmission_keys",
    "rating_values",
]

LIST_PAGE = 200
"""Cases shown at once in the list (the newest); a search or a filter finds the others."""

VISIT_REQUEST_AHEAD = timedelta(days=30)
"""How far ahead a kiosk may ask for a home visit."""
ACTIVE_VISITS = frozenset({VisitStatus.REQUESTED, VisitStatus.SCHEDULED})
VISIT_MODES = frozenset({Mode.DOOR_TO_DOOR, Mode.VIDEO})
"""Cases a home visit may be asked for: door-to-door ones, and video ones as the fallback."""
REMEMBERED_KEYS = 500
"""How many intake keys ``_local/kiosk`` remembers (a form posted twice saves one case)."""
NEWEST_OF_VILLAGE = text(
    "CREATE INDEX IF NOT EXISTS ix_kiosk_cases_village_opened ON cases (village, opened_at)"
)
"""Kiosk-only, in SQL text so the shared read model's metadata (and migrations) stay as they are."""


@dataclass(frozen=True)
class CaseRow:
    """One case of the list: the case, its folded state and its SLA colour."""

    case: Case
    state: CaseState
    colour: Colour | None
    due: date | None
    due_provisional: bool

    @property
    def applicant_name(self) -> str:
        """The applicant's name."""
        return self.case.applicant.name


KioskOutcome = Outcome[CaseRow]
"""An intake's outcome at the kiosk (duplicates listed as case rows)."""


class _Numbering:
    """The counters and clock of one origin while a desk writes (see ``CaseDesk._numbering``)."""

    def __init__(self, store: SQLiteStore, origin: Origin, local: dict[str, Any], last: int):
        self.store, self.origin, self.local, self.counter = store, origin, local, last
        stamp = local.get("hlc")
        self.clock = HlcClock(
            origin.key,
            lambda: time.time_ns() // 1_000_000,
            last=Hlc.parse(stamp) if stamp else None,
        )

    def next(self) -> int:
        """The next counter of this origin."""
        self.counter += 1
        return self.counter

    def write(self, docs: list[dict[str, Any]], **local: Any) -> None:
        """Save ``docs`` and the advanced counter and clock (plus ``local`` fields) at once."""
        counters = {**dict(self.local.get("counters") or {}), self.origin.key: self.counter}
        record = {**self.local, **local, "counters": counters, "hlc": self.clock.last.encode()}
        results = self.store.bulk_docs([record, *docs])
        failed = [r for r in results if r.get("error")]
        if failed:  # only the desk writes these, under its lock: should never happen
            raise KioskError(f"保存失败, 请重试 ({failed[0].get('reason')})")


class CaseDesk:
    """The kiosk's case service over its store."""

    def __init__(self, store: SQLiteStore, read_model: Path | None = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._folded_on: date | None = None
        path = read_model or Path(store.path).with_name("readmodel.sqlite3")
        self._engine = make_engine(f"sqlite:///{path}")
        read_model_metadata.create_all(self._engine)  # a disposable cache: no migrations
        # The list is one village's newest cases: this index saves sorting them all (~50 ms
        # with 10,000 cases; the shared read model indexes the two columns separately).
        with self._engine.begin() as connection:
            connection.execute(NEWEST_OF_VILLAGE)
        self._sessions = make_sessionmaker(self._engine)

    def close(self) -> None:
        """Close the read model's connections."""
        self._engine.dispose()

    def catch_up(self, today: date | None = None) -> None:
        """Project the store's new changes into the read model (refolding all once a day)."""
        today = today or local_date(datetime.now(CHINA_TIME))
        calendar, thresholds = self.calendar(), self.thresholds()
        with self._read_lock:
            project(self.store, self._sessions, "kiosk", calendar, today, thresholds=thresholds)
            if self._folded_on != today:
                refold_all(self._sessions, calendar, today, thresholds=thresholds)
                self._folded_on = today

    # --- district rules ------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        try:
            return dict(self.store.get("settings:district"))
        except DocNotFound:
            return {}

    def calendar(self) -> WorkCalendar:
        """The district's working calendar (the default until its settings arrive)."""
        try:
            return calendar_from_settings(self._settings().get("calendar") or {})
        except InvalidInput:
            return WorkCalendar()

    def thresholds(self) -> SlaThresholds:
        """The district's SLA thresholds."""
        try:
            return thresholds_from_settings(self._settings().get("sla") or {})
        except InvalidInput:
            return SlaThresholds()

    # --- intake --------------------------------------------------------------------------

    def review(
        self,
        form: dict[str, Any],
        item: CatalogueItem,
        catalogue_version: int,
        enrolment: Enrolment,
        *,
        online: bool,
        author: str,
        today: date | None = None,
    ) -> KioskOutcome:
        """Check the form: field errors, pre-review, route options, the same applicant's open
        cases of this service. Nothing is written."""
        now = datetime.now(CHINA_TIME)
        today = today or local_date(now)
        intake = parse_intake(form, item)
        outcome = KioskOutcome(intake)
        calendar = self.calendar()
        outcome.review = review_materials(intake, item, today=today, calendar=calendar)
        if intake.applicant is not None:
            outcome.options = route_options(item, intake.applicant, online=online)
            outcome.mode = choose_mode(intake, outcome.options)
            # A dry run of the case document finds the checksum and phone errors.
            self._build(outcome, item, catalogue_version, enrolment, 1, now, author, dry=True)
            ident = (
                intake.applicant.id_number
                if isinstance(intake.applicant, Person)
                else (intake.applicant.credit_code)
            )
            if ident and "p_id" not in intake.errors and "o_code" not in intake.errors:
                outcome.duplicates = [
                    row
                    for row in self._select(
                        enrolment.village,
                        today,
                        CaseTable.item_code == item.code,
                        CaseTable.status.in_([s.value for s in OPEN]),
                        CaseTable.applicant_id_masked == mask_resident_id(ident),
                    )
                    if _ident(row.case) == ident
                ]
        return outcome

    def _build(
        self,
        outcome: KioskOutcome,
        item: CatalogueItem,
        catalogue_version: int,
        enrolment: Enrolment,
        counter: int,
        now: datetime,
        author: str,
        *,
        dry: bool,
        hlc: Hlc | None = None,
    ) -> Case | None:
        origin = Origin(enrolment.village, enrolment.instance)
        return draft_case(
            outcome.intake, item, outcome.review, outcome.options, outcome.mode,
            origin=origin, counter=counter,
            hlc=hlc or Hlc(int(now.timestamp() * 1000), 0, origin.key),
            wall_time=now, author=author, village=enrolment.village,
            township=enrolment.township, catalogue_version=catalogue_version,
            unit=handling_unit(item, enrolment.village, enrolment.township),
        )  # fmt: skip

    def save(
        self,
        form: dict[str, Any],
        item: CatalogueItem,
        catalogue_version: int,
        enrolment: Enrolment,
        *,
        online: bool,
        author: str,
        attachments: dict[str, dict[str, Any]] | None = None,
    ) -> KioskOutcome:
        """Review, then write the case and its ``submitted`` event if nothing is wrong.

        A key already saved returns that case (``repeated``); an open case of the same
        applicant and service needs ``confirm_duplicate`` on the form.
        """
        key = str(form.get("intake_key") or "").strip()
        with self._lock:
            local = self.store.get_local(KIOSK_LOCAL) or {"_id": KIOSK_LOCAL}
            earlier = (local.get("intakes") or {}).get(key) if key else None
        if earlier:
            return KioskOutcome(parse_intake(form, item), case=self.case(earlier), repeated=True)
        outcome = self.review(
            form, item, catalogue_version, enrolment, online=online, author=author
        )
        if not key:
            outcome.intake.error("form", "表单缺少编号, 请刷新页面后重新填写")
        if outcome.duplicates and not outcome.intake.values.get("confirm_duplicate"):
            outcome.intake.error(
                "confirm_duplicate", "该申请人已有本事项的在办件; 确需再次申请请勾选确认"
            )
        if not outcome.ok or outcome.mode is None:
            return outcome
        origin = Origin(enrolment.village, enrolment.instance)
        with self._numbering(origin) as numbering:
            intakes: dict[str, str] = dict(numbering.local.get("intakes") or {})
            if key in intakes:
                return KioskOutcome(outcome.intake, case=self.case(intakes[key]), repeated=True)
            counter = numbering.next()
            now = datetime.now(CHINA_TIME)
            case = self._build(
                outcome, item, catalogue_version, enrolment, counter, now, author,
                dry=False, hlc=numbering.clock.tick(),
            )  # fmt: skip
            if case is None:
                return outcome
            event = new_event(
                case,
                Submitted(),
                origin=origin,
                counter=numbering.next(),
                hlc=numbering.clock.tick(after=case.stamp),
                wall_time=now,
                author=author,
            )
            intakes[key] = case.id
            if len(intakes) > REMEMBERED_KEYS:
                intakes = dict(list(intakes.items())[-REMEMBERED_KEYS:])
            doc = case_to_doc(case)
            if attachments:  # inline ``material/<key>/<n>.<ext>``, written with the case
                doc["_attachments"] = attachments
                for m in doc.get("materials") or []:
                    prefix = f"material/{m['key']}/"
                    m["attachments"] = [a for a in attachments if a.startswith(prefix)]
            numbering.write([doc, event_to_doc(event)], intakes=intakes)
        self.catch_up()
        outcome.case = case
        return outcome

    @contextlib.contextmanager
    def _numbering(self, origin: Origin) -> Iterator[_Numbering]:
        """Number and stamp documents of ``origin`` under the desk's lock; ``write`` saves
        them with the kiosk's counters and clock (``_local/kiosk``) in one transaction."""
        with self._lock:
            local = self.store.get_local(KIOSK_LOCAL) or {"_id": KIOSK_LOCAL}
            last = int(dict(local.get("counters") or {}).get(origin.key, 0))
            if self._taken(origin, last + 1):  # the local record was lost or is behind
                last = max(last, self._highest_counter(origin))
            yield _Numbering(self.store, origin, local, last)

    def _taken(self, origin: Origin, counter: int) -> bool:
        """The case id of ``counter`` or the event id of ``counter + 1`` is already used."""
        case = make_case_id(origin, counter)
        for doc_id in (case, make_event_id(case, origin, counter + 1)):
            try:
                self.store.get(doc_id)
                return True
            except DocNotFound:
                continue
        return False

    def _highest_counter(self, origin: Origin) -> int:
        """The highest counter already used by ``origin`` in the store (after a lost local)."""
        highest = 0
        prefix = f"case:{origin.unit}:{origin.instance}:"
        for row in self.store.changes()["results"]:
            doc_id = row["id"]
            if doc_id.startswith(prefix):
                highest = max(highest, parse_case_id(doc_id)[1])
            elif doc_id.startswith("case_event:") and f":{origin.key}:" in doc_id:
                try:
                    highest = max(highest, int(doc_id.rsplit(":", 1)[1]))
                except ValueError:
                    continue
        return highest

    # --- reading -------------------------------------------------------------------------

    def _select(
        self, village: str, today: date, *where: Any, limit: int | None = None
    ) -> list[CaseRow]:
        """This village's cases from the read model, newest first, as list rows."""
        self.catch_up(today)
        calendar, thresholds = self.calendar(), self.thresholds()
        query = (
            select(CaseDoc.doc, CaseTable.state)
            .join(CaseTable, CaseTable.case_id == CaseDoc.case_id)
            .where(CaseTable.village == village, *where)
            .order_by(CaseTable.opened_at.desc())
            .limit(limit)
        )
        with self._sessions() as session:
            found = session.execute(query).all()
        rows = []
        for doc, state in found:
            try:
                rows.append(
                    self._row(case_from_doc(doc), _state(state), calendar, thresholds, today)
                )
            except (InvalidInput, msgspec.ValidationError):
                continue  # an unreadable case document: shown nowhere rather than crash
        return rows

    def _row(
        self,
        case: Case,
        state: CaseState,
        calendar: WorkCalendar,
        thresholds: SlaThresholds,
        today: date,
    ) -> CaseRow:
        due = state.due or state.expected_due
        colour = None
        if state.status in OPEN and state.due is not None:
            start = state.accepted_on or state.submitted_on or today
            colour = colour_of(start, state.due.day, today, calendar, thresholds)
        return CaseRow(
            case,
            state,
            colour,
            due.day if due else None,
            bool(due and due.provisional),
        )

    def rows(
        self,
        village: str,
        *,
        query: str = "",
        status: str = "",
        today: date | None = None,
        limit: int = LIST_PAGE,
    ) -> tuple[list[CaseRow], int]:
        """The newest ``limit`` of this village's cases matching ``query`` (case number, name
        or phone digits) and ``status``, and how many match in all: both from SQL."""
        today = today or local_date(datetime.now(CHINA_TIME))
        where = [CaseTable.village == village] + ([CaseTable.status == status] if status else [])
        if query.strip():
            where.append(contains_clause(query))
        rows = self._select(village, today, *where[1:], limit=limit)  # catches up first
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(CaseTable).where(*where))
        return rows, int(total or 0)

    def case(self, case_id: str) -> Case:
        """One case document."""
        return case_from_doc(self.store.get(case_id))

    def by_number(self, number: str, today: date | None = None) -> CaseRow | None:
        """A case and its state by the number printed for citizens, or None."""
        today = today or local_date(datetime.now(CHINA_TIME))
        self.catch_up(today)
        with self._sessions() as session:
            found = session.execute(
                select(CaseDoc.doc, CaseTable.state, CaseTable.village)
                .join(CaseTable, CaseTable.case_id == CaseDoc.case_id)
                .where(CaseTable.case_number == number)
            ).first()
        if found is None:
            return None
        try:
            case, state = case_from_doc(found[0]), _state(found[1])
        except (InvalidInput, msgspec.ValidationError):
            return None
        return self._row(case, state, self.calendar(), self.thresholds(), today)

    # --- actions after intake ------------------------------------------------------------
    # Each action checks the case's folded state and writes its events under the desk's lock
    # (``_numbering``), so a form posted twice finds the first post's events and writes nothing.

    def _current(self, case_id: str, village: str, today: date) -> tuple[Case, CaseState]:
        """This village's case, folded from every document the store holds now."""
        try:
            case = self.case(case_id)
        except DocNotFound:
            raise NotFoundHere("本机没有这个办件") from None
        if case.village != village:
            raise KioskError("这不是本村的办件, 不能在本机办理")
        self.catch_up(today)
        with self._sessions() as session:
            docs = list(
                session.scalars(select(CaseEventDoc.doc).where(CaseEventDoc.case_id == case.id))
            )
        return case, fold(case, docs, self.calendar(), today)

    @staticmethod
    def _events(
        numbering: _Numbering,
        case: Case,
        state: CaseState,
        payloads: Sequence[EventPayload],
        now: datetime,
        author: str,
    ) -> list[CaseEvent]:
        """Events in this order, each stamped after what the kiosk saw of the case."""
        events: list[CaseEvent] = []
        after = state.last_stamp
        for payload in payloads:
            stamp = numbering.clock.tick(after=after)
            events.append(
                new_event(
                    case,
                    payload,
                    origin=numbering.origin,
                    counter=numbering.next(),
                    hlc=stamp,
                    wall_time=now,
                    author=author,
                )
            )
            after = stamp
        return events

    def complete_on_the_spot(
        self,
        case_id: str,
        enrolment: Enrolment,
        *,
        result: str,
        delivery: str,
        handed_over: bool = True,
        person: str = "",
        note: str = "",
        author: str,
    ) -> Action:
        """Accept and complete this village's on-the-spot case here (``accepted``, ``completed``
        and, if the result is already in the citizen's hands, ``delivered``) in one transaction.
        A case already completed writes nothing."""
        result, note, person = result.strip(), note.strip(), person.strip()
        if not result:
            raise KioskError("请填写办理结果 (例如: 已签约, 协议已交群众)")
        if len(result) > 2000 or len(note) > 2000:
            raise KioskError("办理结果和备注各不能超过2000字")
        if len(person) > 200:
            raise KioskError("领取人姓名过长")
        try:
            via = Delivery(delivery)
        except ValueError:
            raise KioskError("请选择办理结果怎样交到群众手中") from None
        now = datetime.now(CHINA_TIME)
        origin = Origin(enrolment.village, enrolment.instance)
        with self._numbering(origin) as numbering:
            case, state = self._current(case_id, enrolment.village, local_date(now))
            if state.status is CaseStatus.COMPLETED:
                return Action(f"本件已于 {state.completed_on} 办结, 未重复保存")
            refusal = completion_refusal(case, state, enrolment.village)
            if refusal:
                raise KioskError(refusal)
            payloads: list[EventPayload] = []
            if state.status is not CaseStatus.ACCEPTED:
                payloads.append(Accepted(note="村便民服务站就近办, 当场受理"))
            payloads.append(Completed(result=result, delivery=via, note=note))
            if handed_over:
                payloads.append(
                    Delivered(to=Recipient.CITIZEN, via=via, person=person or case.applicant.name)
                )
            events = self._events(numbering, case, state, payloads, now, author)
            numbering.write([event_to_doc(e) for e in events])
        self.catch_up()
        handed = "结果已交群众" if handed_over else "请记得把结果交给群众"
        return Action(f"已办结 ({via.label}), {handed}。请群众对本次服务作出评价。", _ids(events))

    def resubmit(
        self,
        case_id: str,
        enrolment: Enrolment,
        *,
        provided: Iterable[str],
        note: str = "",
        author: str,
    ) -> Action:
        """Send a returned case back with every material its one-time notice asked for
        (``resubmitted``); the township accepts it afresh. A repeated post writes nothing."""
        note = note.strip()
        if len(note) > 2000:
            raise KioskError("补正说明不能超过2000字")
        now = datetime.now(CHINA_TIME)
        origin = Origin(enrolment.village, enrolment.instance)
        with self._numbering(origin) as numbering:
            case, state = self._current(case_id, enrolment.village, local_date(now))
            if state.status is not CaseStatus.RETURNED or state.notice is None:
                if _last_applied(state, EventKind.RETURNED, EventKind.RESUBMITTED) == (
                    EventKind.RESUBMITTED
                ):
                    return Action("本件已补正并重新提交, 未重复保存")
                raise KioskError(
                    f"本件当前为“{state.status.label}”; 只有被镇街退回补正的办件才能补正提交"
                )
            keys = resubmission_keys(state.notice, provided)
            events = self._events(
                numbering, case, state, [Resubmitted(provided=keys, note=note)], now, author
            )
            numbering.write([event_to_doc(e) for e in events])
        self.catch_up()
        return Action("已补正并重新提交; 同步后镇街将重新受理, 办理时限重新计算。", _ids(events))

    def request_visit(
        self,
        case_id: str,
        enrolment: Enrolment,
        *,
        day: str,
        period: str,
        note: str = "",
        author: str,
    ) -> Action:
        """Ask the township for a home visit on a working day and period (``visit_requested``);
        it confirms a free staff slot when the request arrives, or staff pick another time.
        Only for this village's open door-to-door cases without a visit asked or booked."""
        note = note.strip()
        if len(note) > 2000:
            raise KioskError("备注不能超过2000字")
        wanted_period = parse_period(period)
        try:
            wanted = date.fromisoformat(day.strip())
        except ValueError:
            raise KioskError("请选择上门日期") from None
        now = datetime.now(CHINA_TIME)
        today = local_date(now)
        calendar = self.calendar()
        if wanted <= today or wanted > today + VISIT_REQUEST_AHEAD:
            raise KioskError(f"上门日期须在明天到 {VISIT_REQUEST_AHEAD.days} 天之内")
        if not calendar.is_workday(wanted):
            raise KioskError(f"{wanted} 不是工作日, 请另选日期")
        origin = Origin(enrolment.village, enrolment.instance)
        with self._numbering(origin) as numbering:
            case, state = self._current(case_id, enrolment.village, today)
            active = [v for v in state.visits if v.status in ACTIVE_VISITS]
            if active:
                v = active[0]
                if (v.day, v.period) == (wanted, wanted_period):
                    return Action("这次上门申请已保存过, 未重复保存")
                raise KioskError(
                    f"本件已有上门安排 ({v.day} {PERIODS.get(v.period, v.period)}, "
                    f"{v.status.label}); 改期请联系镇街"
                )
            if state.mode not in VISIT_MODES or state.status not in OPEN:
                raise KioskError("只有在办的上门办件 (或改为上门的视频办件) 才能申请上门")
            payload = VisitRequested(
                visit_id=f"v-{origin.instance}-{numbering.counter + 1}",
                day=wanted,
                period=wanted_period,
                note=note,
            )
            events = self._events(numbering, case, state, [payload], now, author)
            numbering.write([event_to_doc(e) for e in events])
        self.catch_up()
        return Action(
            f"已申请 {wanted} {PERIODS[wanted_period]} 上门; 同步后由镇街确认, 时间显示在本页。",
            _ids(events),
        )

    def request_video(
        self, case_id: str, enrolment: Enrolment, *, call_id: str, author: str
    ) -> Action:
        """Record that the agent called the township for a video session on this village's
        open video case (``video_requested``, with the call id the township gave)."""
        now = datetime.now(CHINA_TIME)
        origin = Origin(enrolment.village, enrolment.instance)
        with self._numbering(origin) as numbering:
            case, state = self._current(case_id, enrolment.village, local_date(now))
            if any(s.call_id == call_id for s in state.video_sessions):
                return Action("这次视频呼叫已记录过, 未重复保存")
            refusal = video_refusal(case, state, enrolment.village)
            if refusal:
                raise KioskError(refusal)
            payload = VideoRequested(call_id=call_id)
            events = self._events(numbering, case, state, [payload], now, author)
            numbering.write([event_to_doc(e) for e in events])
        self.catch_up()
        return Action("已呼叫镇街视频办, 请等待工作人员接听", _ids(events))

    def rate(
        self,
        case_id: str,
        enrolment: Enrolment,
        *,
        level: int | str,
        tags: Iterable[str] = (),
        text: str = "",
        anonymous: bool = False,
        author: str,
    ) -> Action:
        """Record the citizen's 好差评 of a completed (or refused) case: one kiosk rating per
        case; the same rating posted again writes nothing, a different one is refused."""
        value, chosen, text = rating_values(level, tags, text)
        now = datetime.now(CHINA_TIME)
        origin = Origin(enrolment.village, enrolment.instance)
        with self._numbering(origin) as numbering:
            case, state = self._current(case_id, enrolment.village, local_date(now))
            earlier = kiosk_rating(state)
            if earlier is not None:
                if (earlier.level, earlier.text) == (value, text):
                    return Action("这条评价已保存过, 未重复保存")
                raise KioskError(
                    f"本件已于 {earlier.on} 在服务站评价过 ({RATING_LABELS[earlier.level]}), "
                    "每件只能评价一次"
                )
            if state.status not in RATEABLE:
                raise KioskError(
                    f"本件当前为“{state.status.label}”; 办结 (或不予受理) 后才能请群众评价"
                )
            rated = Rated(
                level=value,
                channel=RatingChannel.KIOSK,
                tags=chosen,
                text=text,
                anonymous=anonymous,
            )
            events = self._events(numbering, case, state, [rated], now, author)
            numbering.write([event_to_doc(e) for e in events])
        self.catch_up()
        message = f"已保存评价: {RATING_LABELS[value]}。"
        if is_bad_rating(value):
            message += "这是差评, 已转入镇街的差评回访整改名单" + (
                "; 匿名评价不回访, 镇街将据此整改。" if anonymous else "; 镇街工作人员会回访群众。"
            )
        return Action(message, _ids(events), follow_up=is_bad_rating(value))


def _state(value: Any) -> CaseState:
    return msgspec.convert(value, CaseState, strict=False)


def _ident(case: Case) -> str:
    a = case.applicant
    return a.id_number if isinstance(a, Person) else a.credit_code


def event_label(kind: str) -> str:
    """An event kind's Chinese name (the raw kind if unknown)."""
    try:
        return EventKind(kind).label
    except ValueError:
        return kind


def status_choices() -> list[tuple[str, str]]:
    """The statuses the list filters by."""
    return [(s.value, s.label) for s in CaseStatus if s is not CaseStatus.DRAFT]


# --- actions after intake: the rules, without the store -------------------------------------

RATEABLE = frozenset({CaseStatus.COMPLETED, CaseStatus.REFUSED})
"""Statuses in which the kiosk asks for a rating: the citizen has had the outcome (一事一评)."""

RATING_TAGS = ("态度好", "效率高", "一次办好", "指引清楚", "材料多", "跑多次", "等待久", "态度差")
"""The tags a citizen may add to a rating (the first four praise, the last four complain)."""

DELIVERY_CHOICES: tuple[tuple[Delivery, str], ...] = (
    (Delivery.WINDOW, "在服务站当场领取"),
    (Delivery.VILLAGE_AGENT, "由村代办员转交"),
    (Delivery.AT_HOME, "上门送达"),
    (Delivery.ONLINE, "网上送达"),
    (Delivery.MAIL, "邮寄送达"),
)
"""How an on-the-spot result reaches the citizen, as the kiosk words it."""


@dataclass(frozen=True)
class Action:
    """What a case action did: a message for the agent and the ids of the events it wrote."""

    message: str
    written: tuple[str, ...] = ()
    follow_up: bool = False
    """A 差评: it goes on the township's follow-up list."""

    @property
    def repeated(self) -> bool:
        """Nothing was written: the same action had been saved before."""
        return not self.written


@dataclass(frozen=True)
class CaseActions:
    """What the case page offers the agent now."""

    complete: bool
    resubmit: bool
    rate: bool
    rating: RatingRecord | None
    """The rating already given at a kiosk, if any."""
    visit: bool = False
    """A home visit may be asked for (an open door-to-door case without one asked or booked,
    or a video case whose call fell through: 上门办 is its fallback)."""
    video: bool = False
    """The township may be called for a video session (an open video case)."""


def _ids(events: Iterable[CaseEvent]) -> tuple[str, ...]:
    return tuple(e.id for e in events)


def _last_applied(state: CaseState, *kinds: EventKind) -> EventKind | None:
    """The latest applied event among ``kinds``."""
    wanted = {k.value for k in kinds}
    for entry in reversed(state.timeline):
        if entry.kind in wanted and entry.effect.value == "applied":
            return EventKind(entry.kind)
    return None


def completion_refusal(case: Case, state: CaseState, village: str) -> str:
    """Why this case cannot be completed at the kiosk of ``village`` ("" if it can)."""
    if case.village != village:
        return "这不是本村的办件, 不能在本机办结"
    if case.mode is not Mode.ON_THE_SPOT:
        return f"本件的办理方式是“{case.mode.label}”, 只有就近办的办件才能在本机当场办结"
    if state.handling_unit != village:
        return "本件由镇街或区里办理, 不能在本机办结; 请等待镇街的办理结果"
    if state.status not in (CaseStatus.SUBMITTED, CaseStatus.RECEIVED, CaseStatus.ACCEPTED):
        return f"本件当前为“{state.status.label}”, 不能办结"
    return ""


def video_refusal(case: Case, state: CaseState, village: str) -> str:
    """Why the kiosk of ``village`` cannot call the township on this case ("" if it can)."""
    if case.village != village:
        return "这不是本村的办件, 不能在本机呼叫视频办"
    if state.mode is not Mode.VIDEO:
        return f"本件的办理方式是“{state.mode.label}”, 只有视频办的办件才能呼叫镇街"
    if state.status not in OPEN:
        return f"本件当前为“{state.status.label}”, 不能再呼叫视频办"
    return ""


def kiosk_rating(state: CaseState) -> RatingRecord | None:
    """The rating of the case (not of a visit) given at a kiosk, if any."""
    return next(
        (r for r in state.ratings if r.channel is RatingChannel.KIOSK and r.visit_id is None),
        None,
    )


def visit_days(calendar: WorkCalendar, today: date | None = None) -> list[date]:
    """The working days a home visit may be asked for: tomorrow up to ``VISIT_REQUEST_AHEAD``."""
    today = today or local_date(datetime.now(CHINA_TIME))
    days = (today + timedelta(days=n) for n in range(1, VISIT_REQUEST_AHEAD.days + 1))
    return [d for d in days if calendar.is_workday(d)]


def case_actions(case: Case, state: CaseState, village: str) -> CaseActions:
    """The actions the kiosk of ``village`` offers on this case now."""
    rating = kiosk_rating(state)
    return CaseActions(
        complete=not completion_refusal(case, state, village),
        resubmit=(
            case.village == village
            and state.status is CaseStatus.RETURNED
            and state.notice is not None
        ),
        rate=case.village == village and state.status in RATEABLE and rating is None,
        rating=rating,
        visit=(
            case.village == village
            and state.mode in VISIT_MODES
            and state.status in OPEN
            and not any(v.status in ACTIVE_VISITS for v in state.visits)
        ),
        video=not video_refusal(case, state, village),
    )


def notice_lines(notice: Returned) -> list[tuple[str, MissingMaterial]]:
    """The one-time notice's lines, each with the value its checkbox posts: the material's
    key, or ``#<line>`` for a material outside the checklist."""
    return [(m.key or f"#{i}", m) for i, m in enumerate(notice.missing)]


def resubmission_keys(notice: Returned, ticked: Iterable[str]) -> tuple[str, ...]:
    """The checklist keys a resubmission provides; every line of the notice must be ticked
    (a one-time notice is answered in full, or the township would only return it again)."""
    lines = notice_lines(notice)
    chosen = {t.strip() for t in ticked if t and t.strip()}
    unknown = sorted(chosen - {value for value, _ in lines})
    if unknown:
        raise KioskError(f"材料“{'、'.join(unknown)}”不在退回告知书所列的材料中")
    if not chosen:
        raise KioskError("请逐项勾选群众已补齐的材料")
    left = [m.name for value, m in lines if value not in chosen]
    if left:
        raise KioskError(f"一次性告知书所列材料须全部补齐后才能重新提交; 还缺: {'、'.join(left)}")
    return tuple(dict.fromkeys(m.key for _, m in lines if m.key is not None))


def rating_values(
    level: int | str, tags: Iterable[str], text: str
) -> tuple[int, tuple[str, ...], str]:
    """The level (1-5), known tags and comment of a rating form, checked."""
    try:
        value = int(str(level).strip())
    except ValueError:
        value = 0
    if value not in RATING_LABELS:
        raise KioskError("请选择评价等级: 非常满意、满意、基本满意、不满意或非常不满意")
    chosen = tuple(dict.fromkeys(t.strip() for t in tags if t and t.strip()))
    unknown = [t for t in chosen if t not in RATING_TAGS]
    if unknown:
        raise KioskError(f"没有这个评价标签: {'、'.join(unknown)}")
    text = text.strip()
    if len(text) > 2000:
        raise KioskError("评价内容不能超过2000字")
    return value, chosen, text
