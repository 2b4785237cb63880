"""Citizens' home-visit bookings (上门办, issue 6): the district side of the contract.

A booking is a case. Creating one writes the case with ``submitted`` and ``visit_requested``
as the district server (``sync.writer.EventWriter``, origin the district's code) into the
``district`` database, then asks the citizen's township node to take a slot of that period
on its visit calendar — the single writer of slots (``POST /api/v1/visit-bookings``):

* 201/200: the booking is *scheduled* (the node wrote ``visit_scheduled``);
* 409 (the period was just taken) or 400: nothing is booked. The district writes
  ``visit_cancelled`` and ``withdrawn`` on the case (so no staff list keeps a dead request),
  keeps the row as *cancelled* for the record, and the citizen is told plainly, with no code;
* no answer within the timeout, a refused connection, 5xx (or 401/404 from a node that does
  not know its key or the API yet): the booking stays *requested*; the documents reach the
  township by replication, its catch-up confirms the request when a slot is free (else staff
  place it), and ``reconcile`` below follows the outcome as it replicates back up.

Look-up needs the booking code *and* the contact phone; a wrong phone gets the same answer as
an unknown code. Moving and cancelling call the township too; when it does not answer nothing
changes and the citizen is told to try again later (the district never writes a visit change
the township's calendar has not made, so a slot can never be promised twice).

Notifications are left to the ``notify(session, kind, booking)`` seam: every change of a
booking calls it inside the transaction that made the change, so the outbox row it writes
(``central.services.notifications``, the default) commits with it.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

import httpx
import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import Booking, TownshipNode, Unit
from central.services.district_settings import work_calendar
from central.services.enrolments import DISTRICT_DB
from central.services.limits import check_open_bookings
from central.services.notifications import enqueue_booking_notice
from central.services.published import PublishedCatalogue, current_catalogue
from core.calendar import WorkCalendar
from core.cases import (
    CHINA_TIME,
    Case,
    CaseEvent,
    Person,
    Submitted,
    VisitCancelled,
    VisitRequested,
    Withdrawn,
    case_from_doc,
    case_id_from_number,
    local_date,
)
from core.cases import new_case as build_new_case
from core.catalogue import CatalogueItem, Eligibility, Mode
from core.errors import Conflict, DomainError, FieldError, InvalidInput, NotFound
from core.fold import TERMINAL, CaseState, CaseStatus, VisitStatus
from core.hierarchy import Level, township_of
from core.identity import validate_resident_id
from core.routing import door_to_door_eligible
from core.visits import PERIOD_STARTS, PERIODS
from sync.couch import couch_errors
from sync.readmodel import CaseRow, digits
from sync.writer import EventWriter

__all__ = [
    "AUTHOR",
    "BookingStatus",
    "BookingRules",
    "BookingForm",
    "PeriodTaken",
    "TownshipUnavailable",
    "PeriodView",
    "DayView",
    "Answer",
    "TownshipLink",
    "Outcome",
    "Progress",
    "Notify",
    "log_notice",
    "new_booking_code",
    "normalise_code",
    "normalise_phone",
    "door_to_door_items",
    "district_villages",
    "check_form",
    "bookable_days",
    "BookingService",
    "find_booking",
    "progress",
]

log = logging.getLogger(__name__)

"""The periods of a working day: Chinese name and when the visits start (China time)."""

AUTHOR = "citizen:online"
"""The author of the case documents the district writes for a citizen's booking."""

_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CODE_LENGTH = 8
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_LANDLINE = re.compile(r"^0[1-9][0-9]{8,10}$")
_NOT_FOUND = "预约码或联系电话不正确"
_CASE_NOT_FOUND = "没有找到这个办件, 请核对办件编号和联系电话"


class BookingStatus(StrEnum):
    """Where a booking stands."""

    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    DONE = "done"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "requested": "已申请, 待镇街确认",
            "scheduled": "已预约成功",
            "cancelled": "已取消",
            "done": "已上门服务",
        }[self.value]


LIVE = (BookingStatus.REQUESTED.value, BookingStatus.SCHEDULED.value)


class PeriodTaken(Conflict):
    """The township's last slot of that period went to someone else: nothing was booked."""


class TownshipUnavailable(DomainError):
    """The township node did not answer; nothing was changed."""


@dataclass(frozen=True)
class BookingRules:
    """The booking window (working days, today included) and the cutoff before a period."""

    window_days: int = 14
    cutoff_minutes: int = 120

    def closes_at(self, day: date, period: str) -> datetime:
        """When booking ``period`` of ``day`` closes."""
        start = datetime.combine(day, PERIOD_STARTS[period], tzinfo=CHINA_TIME)
        return start - timedelta(minutes=self.cutoff_minutes)


class BookingForm(msgspec.Struct, frozen=True, kw_only=True):
    """What the citizen fills in before picking a period (the create shape, as posted)."""

    item_code: str = ""
    village: str = ""
    person_name: str = ""
    id_number: str = ""
    address: str = ""
    qualification: str = ""
    qualification_note: str = ""
    phone: str = ""


# --- values ------------------------------------------------------------------------------------


def new_booking_code() -> str:
    """A fresh booking code: 8 random Crockford base32 characters."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))


def normalise_code(text: str) -> str:
    """A typed booking code as stored: upper case, no separators, O→0 and I/L→1."""
    compact = re.sub(r"[\s-]", "", str(text)).upper()
    return compact.translate(str.maketrans("OIL", "011"))


def normalise_phone(text: str) -> str:
    """A mobile number (11 digits) or a landline with its area code, digits only; the +86
    prefix is dropped. Raises InvalidInput otherwise."""
    number = digits(str(text))
    if number.startswith("0086"):
        number = number[4:]
    elif number.startswith("86") and len(number) == 13:
        number = number[2:]
    if _MOBILE.match(number) or _LANDLINE.match(number):
        return number
    raise InvalidInput(
        FieldError(
            "phone",
            "请填写正确的手机号码 (11位) 或带区号的固定电话",
            "A mobile number or a landline with its area code",
        )
    )


def _period(text: str) -> str:
    if text not in PERIODS:
        raise InvalidInput(FieldError("period", "请选择上午或下午", "Pick am or pm"))
    return text


# --- what can be booked ---------------------------------------------------------------------------


def door_to_door_items(catalogue: PublishedCatalogue | None) -> list[CatalogueItem]:
    """The published items served door to door, by code."""
    if catalogue is None:
        return []
    return sorted(
        (i for i in catalogue.items if Mode.DOOR_TO_DOOR in i.modes and not i.retired),
        key=lambda i: i.code,
    )


def district_villages(session: Session) -> list[tuple[Unit, list[Unit]]]:
    """The district's townships, each with its villages (townships without villages left out)."""
    units = list(session.scalars(select(Unit).order_by(Unit.code)))
    townships = {u.code: u for u in units if u.level == Level.TOWNSHIP.value}
    grouped: dict[str, list[Unit]] = {}
    for unit in units:
        if unit.level == Level.VILLAGE.value and township_of(unit.code) in townships:
            grouped.setdefault(str(township_of(unit.code)), []).append(unit)
    return [(townships[code], villages) for code, villages in sorted(grouped.items())]


class Checked(NamedTuple):
    """A booking form that passed every check, with what it names."""

    item: CatalogueItem
    village: Unit
    township: str
    person: Person
    qualification: Eligibility


def check_form(
    session: Session, catalogue: PublishedCatalogue | None, form: BookingForm, today: date
) -> Checked:
    """Check the form (everything but the period); raise InvalidInput naming every field."""
    errors: list[FieldError] = []

    def bad(name: str, message: str, message_en: str = "") -> None:
        errors.append(FieldError(name, message, message_en))

    item = next((i for i in door_to_door_items(catalogue) if i.code == form.item_code), None)
    if item is None:
        bad("item_code", "请选择一项提供上门服务的事项", "Pick a door-to-door service")
    village = session.get(Unit, form.village.strip()) if form.village.strip() else None
    if village is None or village.level != Level.VILLAGE.value:
        bad("village", "请选择所在的村(社区)", "Pick the village")
        village = None
    name = form.person_name.strip()
    if not name:
        bad("person_name", "请填写需要上门服务的人的姓名", "The name is required")
    elif len(name) > 30:
        bad("person_name", "姓名不能超过30字", "Name too long")
    id_number = form.id_number.strip().upper()
    try:
        id_number = validate_resident_id(id_number, today)
    except InvalidInput as exc:
        for e in exc.errors:
            bad("id_number", e.message, e.message_en)
    address = form.address.strip()
    if len(address) < 4:
        bad("address", "请填写详细住址 (组、门牌号), 方便工作人员上门", "The address is required")
    elif len(address) > 200:
        bad("address", "住址不能超过200字", "Address too long")
    phone = ""
    try:
        phone = normalise_phone(form.phone)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    qualification: Eligibility | None = None
    try:
        qualification = Eligibility(form.qualification)
    except ValueError:
        bad("qualification", "请选择上门服务的原因 (高龄、残疾、卧床或其他)", "Pick why")
    note = form.qualification_note.strip()
    if len(note) > 200:
        bad("qualification_note", "情况说明不能超过200字", "Note too long")
    elif qualification is Eligibility.OTHER and not note:
        bad("qualification_note", "选择“其他特殊困难”时请简要说明情况", "Say why")
    person = Person(
        name=name,
        id_number=id_number,
        phone=phone,
        address=address,
        flags=(qualification,) if qualification else (),
        flag_note=note,
    )
    if item is not None and qualification is not None:
        if not door_to_door_eligible(item, person):
            groups = "、".join(g.label for g in item.door_to_door_for or tuple(Eligibility))
            bad("qualification", f"“{item.name}”的上门服务只面向{groups}", "Not eligible")
    if errors:
        raise InvalidInput(errors)
    assert item is not None and village is not None and qualification is not None
    check_open_bookings(session, phone, village.code, address)  # abuse caps (limits.py)
    return Checked(item, village, str(township_of(village.code)), person, qualification)


@dataclass(frozen=True)
class PeriodView:
    """One period of one day as the citizen sees it."""

    day: date
    period: str
    capacity: int
    free: int
    closed: bool
    """Past its cutoff."""

    @property
    def label(self) -> str:
        """Chinese name of the period."""
        return PERIODS[self.period]

    @property
    def bookable(self) -> bool:
        """Free and still open."""
        return self.free > 0 and not self.closed


@dataclass(frozen=True)
class DayView:
    """One working day of the booking window."""

    day: date
    periods: tuple[PeriodView, ...]

    @property
    def weekday(self) -> str:
        """The weekday in Chinese."""
        return "周" + "一二三四五六日"[self.day.weekday()]


def _window(calendar: WorkCalendar, today: date, count: int) -> list[date]:
    days: list[date] = []
    day = today
    while len(days) < count and day < today + timedelta(days=count * 3 + 30):
        if calendar.is_workday(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def _availability(server: Any, township: str, days: list[date]) -> dict[str, dict[str, Any]]:
    """The township's published ``visit_availability`` documents of ``days``, by day."""
    if not days:
        return {}
    prefix = f"visit_availability:{township}:"
    with couch_errors():
        rows = server[DISTRICT_DB].view(
            "_all_docs",
            startkey=prefix + days[0].isoformat(),
            endkey=prefix + days[-1].isoformat(),
            include_docs=True,
        )
        return {
            str(r.doc.get("day")): dict(r.doc.get("periods") or {})
            for r in rows
            if r.doc and r.doc.get("type") == "visit_availability"
        }


def bookable_days(
    server: Any, calendar: WorkCalendar, rules: BookingRules, township: str, now: datetime
) -> list[DayView]:
    """The booking window's working days with the township's published free counts."""
    days = _window(calendar, local_date(now), rules.window_days)
    published = _availability(server, township, days)
    views = []
    for day in days:
        periods = published.get(day.isoformat(), {})
        views.append(
            DayView(
                day,
                tuple(
                    PeriodView(
                        day=day,
                        period=p,
                        capacity=int((periods.get(p) or {}).get("capacity") or 0),
                        free=int((periods.get(p) or {}).get("free") or 0),
                        closed=now >= rules.closes_at(day, p),
                    )
                    for p in PERIODS
                ),
            )
        )
    return views


def _check_period(
    server: Any,
    calendar: WorkCalendar,
    rules: BookingRules,
    township: str,
    day: date,
    period: str,
    now: datetime,
) -> None:
    """Refuse a period outside the window, past its cutoff or not free (InvalidInput)."""
    period = _period(period)
    views = bookable_days(server, calendar, rules, township, now)
    found = next((p for v in views if v.day == day for p in v.periods if p.period == period), None)
    label = f"{day.isoformat()} {PERIODS[period]}"
    if found is None:
        raise InvalidInput(
            FieldError(
                "period",
                f"{label} 不可预约: 只能预约今后 {rules.window_days} 个工作日内的时段",
                "Outside the booking window or not a working day",
            )
        )
    if found.closed:
        hours = rules.cutoff_minutes / 60
        raise InvalidInput(
            FieldError(
                "period",
                f"{label} 已截止预约 (需在开始前 {hours:g} 小时预约), 请另选时段",
                "Past the cutoff",
            )
        )
    if found.free <= 0:
        raise InvalidInput(FieldError("period", f"{label} 已约满, 请另选时段", "Full"))


# --- the township node --------------------------------------------------------------------------


class Answer(NamedTuple):
    """A township node's answer: its status code and JSON body."""

    status: int
    body: dict[str, Any]


class TownshipLink:
    """Calls township nodes per the contract (JSON, ``Authorization: Bearer <key>``)."""

    def __init__(self, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self.timeout = timeout
        self.transport = transport

    def post(self, node: TownshipNode | None, path: str, body: dict[str, Any]) -> Answer | None:
        """POST ``body`` to the node; None when it did not answer usefully (not registered,
        unreachable, timed out, 5xx, or 401/404: a key or an API it does not know yet)."""
        if node is None:
            return None
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as client:
                response = client.post(
                    node.url.rstrip("/") + path,
                    json=body,
                    headers={"Authorization": f"Bearer {node.api_key}"},
                )
        except httpx.HTTPError as exc:
            log.warning("township node %s unreachable: %s", node.code, exc)
            return None
        if response.status_code >= 500 or response.status_code in (401, 403, 404, 405):
            log.warning("township node %s answered %s", node.code, response.status_code)
            return None
        try:
            data = response.json()
        except ValueError:
            data = {}
        return Answer(response.status_code, data if isinstance(data, dict) else {})


# --- notifications seam ---------------------------------------------------------------------------

Notify = Callable[[Session, str, Booking], None]
"""``notify(session, kind, booking)``: called in the transaction that changed the booking.
Kinds: ``requested``, ``confirmed``, ``changed``, ``cancelled``, ``done``."""


def log_notice(session: Session, kind: str, booking: Booking) -> None:
    """The default notifier: logs only. (Issue 6 item 6 replaces it with an outbox.)"""
    log.info("booking %s: %s (%s %s)", booking.code, kind, booking.day, booking.period)


# --- the service ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What creating, moving or cancelling a booking came to."""

    booking: Booking | None
    message: str
    """What the citizen is told, in plain Chinese."""
    booked: bool = True
    """False when nothing was booked (the period was just taken): no code to give."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class BookingService:
    """The district's bookings: its SQL, its CouchDB and the township nodes."""

    sessions: sessionmaker[Session]
    server: Callable[[], Any]
    link: TownshipLink
    rules: BookingRules = field(default_factory=BookingRules)
    notify: Notify = enqueue_booking_notice
    """Queues the citizen's message in the notification outbox (``log_notice`` only logs)."""
    now: Callable[[], datetime] = _now

    # -- reading ---------------------------------------------------------------------------------

    def calendar(self) -> WorkCalendar:
        """The district's working-day calendar."""
        with self.sessions() as session:
            return work_calendar(session)

    def catalogue(self) -> PublishedCatalogue | None:
        """The newest published catalogue."""
        return current_catalogue(self.server())

    def days(self, township: str) -> list[DayView]:
        """The booking window of ``township`` with its free counts."""
        return bookable_days(self.server(), self.calendar(), self.rules, township, self.now())

    def check(self, form: BookingForm) -> Checked:
        """Check a booking form (not its period); raise InvalidInput."""
        catalogue = self.catalogue()
        with self.sessions() as session:
            return check_form(session, catalogue, form, local_date(self.now()))

    # -- creating ----------------------------------------------------------------------------------

    def create(self, form: BookingForm, day: date, period: str, request_key: str) -> Outcome:
        """Book a home visit: write the case, ask the township; see the module docstring."""
        with self.sessions() as session:
            earlier = session.scalar(select(Booking).where(Booking.request_key == request_key))
            if earlier is not None:
                return Outcome(earlier, _message(earlier), earlier.status != "cancelled")
        catalogue = self.catalogue()
        with self.sessions() as session:
            checked = check_form(session, catalogue, form, local_date(self.now()))
            district = _district_code(session)
        assert catalogue is not None
        server = self.server()
        _check_period(
            server, self.calendar(), self.rules, checked.township, day, period, self.now()
        )
        writer = EventWriter(self.sessions, district)
        database = server[DISTRICT_DB]
        visit_id = "v" + uuid.uuid4().hex[:12]

        def build(origin: Any, counter: int, stamp: Any, wall_time: datetime) -> Case:
            return build_new_case(
                origin=origin,
                counter=counter,
                hlc=stamp,
                wall_time=wall_time,
                author=AUTHOR,
                village=checked.village.code,
                township=checked.township,
                item=checked.item,
                catalogue_version=catalogue.version,
                applicant=checked.person,
                mode=Mode.DOOR_TO_DOOR,
                handling_unit=checked.township,
                mode_reason=f"群众网上预约上门办 ({checked.qualification.label})",
            )

        case, events = writer.open_case(
            database,
            build,
            [
                Submitted(note="群众通过区级网上预约上门服务"),
                VisitRequested(visit_id=visit_id, day=day, period=period, note="网上预约"),
            ],
            author=AUTHOR,
        )
        booking = self._insert(checked, form, case, visit_id, day, period, request_key)
        if booking is None:  # a double post won the race: withdraw this twin
            self._withdraw(writer, database, case, events, visit_id, "重复提交")
            with self.sessions() as session:
                earlier = session.scalar(select(Booking).where(Booking.request_key == request_key))
            assert earlier is not None
            return Outcome(earlier, _message(earlier), earlier.status != "cancelled")
        answer = self._call(
            checked.township,
            "/api/v1/visit-bookings",
            {
                "case": None,  # filled below with the stored revisions
                "events": [],
                "visit_id": visit_id,
                "day": day.isoformat(),
                "period": period,
            },
            docs=[case.id, *(e.id for e in events)],
        )
        return self._after_booking_call(booking.code, answer, writer, database, case, events)

    def _insert(
        self,
        checked: Checked,
        form: BookingForm,
        case: Case,
        visit_id: str,
        day: date,
        period: str,
        request_key: str,
    ) -> Booking | None:
        now = self.now()
        for _ in range(5):
            booking = Booking(
                code=new_booking_code(),
                request_key=request_key,
                case_id=case.id,
                case_number=case.case_number,
                visit_id=visit_id,
                township=checked.township,
                village=checked.village.code,
                item_code=checked.item.code,
                item_name=checked.item.name,
                person_name=checked.person.name,
                address=checked.person.address,
                qualification=checked.qualification.value,
                qualification_note=checked.person.flag_note,
                phone=checked.person.phone,
                day=day,
                period=period,
                status=BookingStatus.REQUESTED.value,
                staff_name="",
                note="",
                case_hlc="",
                created_at=now,
                updated_at=now,
            )
            with self.sessions() as session:
                session.add(booking)
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    if session.scalar(select(Booking).where(Booking.request_key == request_key)):
                        return None
                    continue  # the code was taken: draw another
                session.refresh(booking)
                session.expunge(booking)
                return booking
        raise RuntimeError("could not draw a free booking code")

    def _call(
        self, township: str, path: str, body: dict[str, Any], docs: Iterable[str] = ()
    ) -> Answer | None:
        with self.sessions() as session:
            node = session.get(TownshipNode, township)
            if node is not None:
                session.expunge(node)
        if node is None:
            return None
        ids = list(docs)
        if ids:  # the case and its events as stored, with their revisions
            with couch_errors():
                rows = self.server()[DISTRICT_DB].view("_all_docs", keys=ids, include_docs=True)
                stored = {r.id: dict(r.doc) for r in rows if r.doc}
            body = {**body, "case": stored.get(ids[0]), "events": [stored[i] for i in ids[1:]]}
        return self.link.post(node, path, body)

    def _after_booking_call(
        self,
        code: str,
        answer: Answer | None,
        writer: EventWriter,
        database: Any,
        case: Case,
        events: list[CaseEvent],
    ) -> Outcome:
        with self.sessions() as session:
            booking = session.get(Booking, code)
            assert booking is not None
            if answer is not None and answer.status in (200, 201):
                booking.status = BookingStatus.SCHEDULED.value
                booking.staff_name = str(answer.body.get("staff_name") or "")[:60]
                booking.note = ""
                kind = "confirmed"
            elif answer is not None and answer.status in (400, 409):
                message = str(answer.body.get("message") or "该时段已约满, 请另选时段")
                booking.status = BookingStatus.CANCELLED.value
                booking.note = message[:300]
                kind = ""
            else:
                booking.note = "镇街服务中心暂时未确认, 确认后会通知您"
                kind = "requested"
            booking.updated_at = self.now()
            if kind:
                self.notify(session, kind, booking)
            session.commit()
            session.refresh(booking)
            session.expunge(booking)
        if booking.status == BookingStatus.CANCELLED.value:
            self._withdraw(writer, database, case, events, booking.visit_id, booking.note)
            return Outcome(booking, f"{booking.note}。本次没有预约成功, 请另选时段。", False)
        return Outcome(booking, _message(booking))

    @staticmethod
    def _withdraw(
        writer: EventWriter,
        database: Any,
        case: Case,
        events: list[CaseEvent],
        visit_id: str,
        reason: str,
    ) -> None:
        """Close a case whose booking did not happen: its request cancelled, the case withdrawn."""
        try:
            writer.append(
                database,
                case,
                [VisitCancelled(visit_id=visit_id, reason=reason), Withdrawn(reason=reason)],
                author=AUTHOR,
                after=max(e.stamp for e in events),
            )
        except DomainError:
            log.exception("could not withdraw case %s", case.id)

    # -- look-up, move, cancel ------------------------------------------------------------------

    def find(self, code: str, phone: str) -> Booking:
        """The booking with this code and contact phone; NotFound otherwise (same message)."""
        with self.sessions() as session:
            booking = find_booking(session, code, phone)
            session.expunge(booking)
            return booking

    def move(self, code: str, phone: str, day: date, period: str) -> Outcome:
        """Move the visit to another period, through the township; nothing changes unless it
        answers yes."""
        booking = self.find(code, phone)
        if booking.status not in LIVE:
            raise Conflict(f"该预约{BookingStatus(booking.status).label}, 不能改期")
        if (booking.day, booking.period) == (day, period):
            raise InvalidInput(FieldError("period", "这就是现在预约的时段, 请另选", "Same period"))
        server = self.server()
        _check_period(
            server, self.calendar(), self.rules, booking.township, day, period, self.now()
        )
        answer = self._call(
            booking.township,
            f"/api/v1/visit-bookings/{booking.visit_id}/move",
            {"case_id": booking.case_id, "day": day.isoformat(), "period": period},
        )
        if answer is None:
            raise TownshipUnavailable("镇街服务中心暂时联系不上, 预约没有改动, 请稍后再试")
        if answer.status == 409:
            raise PeriodTaken(str(answer.body.get("message") or "该时段已约满, 请另选时段"))
        if answer.status not in (200, 201):
            message = str(answer.body.get("message") or "镇街服务中心未能改期")
            raise InvalidInput(FieldError("period", message, "The township refused"))
        with self.sessions() as session:
            row = session.get(Booking, booking.code)
            assert row is not None
            row.day, row.period = day, period
            row.status = BookingStatus.SCHEDULED.value
            row.staff_name = str(answer.body.get("staff_name") or "")[:60]
            row.note = ""
            row.updated_at = self.now()
            self.notify(session, "changed", row)
            session.commit()
            session.refresh(row)
            session.expunge(row)
        return Outcome(row, _message(row))

    def cancel(self, code: str, phone: str, reason: str = "") -> Outcome:
        """Cancel the visit through the township (which frees the slot at once) and withdraw
        the case; nothing changes if the township does not answer."""
        booking = self.find(code, phone)
        if booking.status not in LIVE:
            raise Conflict(f"该预约{BookingStatus(booking.status).label}, 不能取消")
        reason = reason.strip()[:200] or "群众取消预约"
        answer = self._call(
            booking.township,
            f"/api/v1/visit-bookings/{booking.visit_id}/cancel",
            {"case_id": booking.case_id, "reason": reason},
        )
        if answer is None:
            raise TownshipUnavailable("镇街服务中心暂时联系不上, 预约没有取消, 请稍后再试")
        if answer.status != 200:
            message = str(answer.body.get("message") or "镇街服务中心未能取消")
            raise Conflict(message)
        with self.sessions() as session:
            row = session.get(Booking, booking.code)
            assert row is not None
            row.status = BookingStatus.CANCELLED.value
            row.note = reason
            row.updated_at = self.now()
            self.notify(session, "cancelled", row)
            session.commit()
            session.refresh(row)
            session.expunge(row)
        self._withdraw_after_cancel(row)
        return Outcome(row, "预约已取消, 该时段已释放。")

    def _withdraw_after_cancel(self, booking: Booking) -> None:
        """Write ``withdrawn`` on the booking's case (its fold comes from the read model)."""
        with self.sessions() as session:
            found = session.execute(
                select(CaseRow.state).where(CaseRow.case_id == booking.case_id)
            ).scalar_one_or_none()
            district = _district_code(session)
        server = self.server()
        with couch_errors():
            doc = server[DISTRICT_DB].get(booking.case_id)
        if doc is None:
            return
        case = case_from_doc(doc)
        state = msgspec.convert(found, CaseState, strict=False) if found else None
        if state is not None and state.status in TERMINAL:
            return
        after = state.last_stamp if state is not None and state.last_hlc else case.stamp
        try:
            EventWriter(self.sessions, district).append(
                server[DISTRICT_DB],
                case,
                [Withdrawn(reason="群众取消上门预约")],
                author=AUTHOR,
                after=after,
            )
        except DomainError:
            log.exception("could not withdraw case %s", case.id)

    # -- following the township --------------------------------------------------------------------

    def reconcile(self) -> int:
        """Bring live bookings in line with their cases as the district's read model holds
        them (the township's ``visit_scheduled`` / ``visit_cancelled`` / ``visit_recorded``
        arrive by replication); return how many bookings changed."""
        changed = 0
        with self.sessions() as session:
            rows = session.execute(
                select(Booking, CaseRow.state, CaseRow.last_hlc)
                .join(CaseRow, CaseRow.case_id == Booking.case_id)
                .where(Booking.status.in_(LIVE), CaseRow.last_hlc != Booking.case_hlc)
            ).all()
            for booking, state_json, last_hlc in rows:
                state = msgspec.convert(state_json, CaseState, strict=False)
                kind = _follow(booking, state)
                booking.case_hlc = last_hlc
                if kind:
                    booking.updated_at = self.now()
                    self.notify(session, kind, booking)
                    changed += 1
            session.commit()
        return changed


def _follow(booking: Booking, state: CaseState) -> str:
    """Apply the case's state to the booking; return the notice kind, or "" if unchanged."""
    visit = next((v for v in state.visits if v.visit_id == booking.visit_id), None)
    if visit is None:
        return ""
    if visit.status is VisitStatus.SCHEDULED:
        moved = (visit.day, visit.period) != (booking.day, booking.period)
        if booking.status == BookingStatus.SCHEDULED.value and not moved:
            if visit.staff_name and visit.staff_name != booking.staff_name:
                booking.staff_name = visit.staff_name[:60]
            return ""
        kind = "confirmed" if booking.status == BookingStatus.REQUESTED.value else "changed"
        booking.status = BookingStatus.SCHEDULED.value
        booking.day, booking.period = visit.day, visit.period
        booking.staff_name = visit.staff_name[:60]
        booking.note = ""
        return kind
    if visit.status is VisitStatus.CANCELLED or (
        visit.status is VisitStatus.REQUESTED and state.status in TERMINAL
    ):
        booking.status = BookingStatus.CANCELLED.value
        booking.note = "镇街服务中心已取消本次上门服务"
        return "cancelled"
    if visit.status is VisitStatus.DONE:
        booking.status = BookingStatus.DONE.value
        return "done"
    return ""


def _message(booking: Booking) -> str:
    label = f"{booking.day.isoformat()} {PERIODS[booking.period]}"
    if booking.status == BookingStatus.SCHEDULED.value:
        return f"预约成功: {label}, 工作人员会按时上门。"
    if booking.status == BookingStatus.REQUESTED.value:
        return (
            f"已提交申请: {label}。镇街服务中心暂时未能确认, 确认后会通知您; "
            "如该时段已满, 工作人员会与您另约时间。"
        )
    return f"该预约{BookingStatus(booking.status).label}。"


def _district_code(session: Session) -> str:
    code = session.scalar(select(Unit.code).where(Unit.level == Level.DISTRICT.value))
    if code is None:
        raise NotFound("区县", "", "区级单位尚未建立")
    return code


def find_booking(session: Session, code: str, phone: str) -> Booking:
    """The booking with this code and contact phone; NotFound (one message for both)."""
    try:
        number = normalise_phone(phone)
    except InvalidInput:
        number = ""
    booking = session.get(Booking, normalise_code(code)[:_CODE_LENGTH])
    if booking is None or not number or not secrets.compare_digest(booking.phone, number):
        raise NotFound("预约", "", _NOT_FOUND)
    return booking


# --- case progress --------------------------------------------------------------------------------


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """What the public progress page shows of a case: its state, never the citizen's data."""

    case_number: str
    item_name: str
    status: str
    status_label: str
    expected_on: date | None
    expected_provisional: bool
    completed_on: date | None
    missing: tuple[str, ...]
    visits: tuple[tuple[date, str, str], ...]
    """(day, period label, status label) of each home visit."""


def progress(session: Session, case_number: str, phone: str) -> Progress:
    """A case's progress by case number and the applicant's (or representative's) phone."""
    try:
        case_id = case_id_from_number(case_number)
    except InvalidInput:
        raise NotFound("办件", "", _CASE_NOT_FOUND) from None
    row = session.get(CaseRow, case_id)
    given = {digits(phone)}
    try:
        given.add(normalise_phone(phone))
    except InvalidInput:
        pass
    given.discard("")
    known = {row.phone, row.representative_phone} - {""} if row is not None else set()
    if row is None or not given & known:
        raise NotFound("办件", "", _CASE_NOT_FOUND)
    state = msgspec.convert(row.state, CaseState, strict=False)
    status = CaseStatus(row.status)
    missing: list[str] = []
    if status is CaseStatus.RETURNED and state.notice is not None:
        missing += [m.name for m in state.notice.missing]
    missing += [m.name for m in state.materials if m.status.value in ("missing", "to_follow")]
    expected, provisional = row.due_on, row.due_provisional
    if expected is None:
        expected, provisional = row.expected_due_on, row.expected_due_provisional
    if status in TERMINAL:
        expected, provisional = None, False
    visits = tuple((v.day, PERIODS.get(v.period, v.period), v.status.label) for v in state.visits)
    return Progress(
        case_number=row.case_number,
        item_name=row.item_name,
        status=status.value,
        status_label=status.label,
        expected_on=expected,
        expected_provisional=provisional,
        completed_on=row.completed_on,
        missing=tuple(dict.fromkeys(missing)),
        visits=visits,
    )
