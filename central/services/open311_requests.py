"""Open311 GeoReport v2 service requests for home visits (issue 6 item 8).

A GeoReport *service request* here is a citizen's home-visit booking. Creating one goes
through the booking service exactly like the public pages (the same checks, caps, case and
township call); reading them gives only what anyone may see.

Creating (``POST requests.json``, form-encoded as the specification says; JSON is accepted too):

* ``service_code`` — a published item served door to door;
* ``last_name`` + ``first_name`` (Chinese order: surname first) — who the visit is for;
* ``phone``, ``address_string`` — the contact phone and the street address;
* ``attribute[village]`` (village code), ``attribute[id_number]``,
  ``attribute[qualification]`` (``elderly`` / ``disabled`` / ``bedridden`` / ``other``),
  ``attribute[qualification_note]`` (required with ``other``; ``description`` is taken
  when it is absent), and the period wished: ``attribute[day]`` (YYYY-MM-DD) with
  ``attribute[period]`` (``am`` / ``pm``).
* Without a day and period the request takes the **earliest bookable period** of the
  township's published availability (same window and cutoff as the pages) and goes the
  ordinary way: scheduled when the township confirms at once, *requested* (kept for that
  period, confirmed on the township's catch-up or re-placed by staff) when it does not answer.
  A booking row always has a period, so "no wish" means "the first free one", not "none".
  With no free period in the window the request is refused (400).

The answer's ``service_request_id`` is the visit's id — random, and not the booking code,
which with the phone is what lets a citizen move, cancel or rate. The code is given once, in
the creating answer's ``service_notice``.

Reading (``GET requests.json`` / ``requests/{id}.json``) shows status (``open`` until the
booking is cancelled or the case reaches an end), status notes, the township as
``agency_responsible``, the item as ``service_name``, and the times. It never shows names,
phones, ID numbers, addresses (not even the village), the qualification, the citizen's notes
or staff names. ``requested_datetime`` and ``updated_datetime`` are the booking's; the
``expected_datetime`` is the visit's start while it is to come, else the case's due date.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import msgspec
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from central.db.models import Booking, Unit
from central.services.bookings import (
    BookingForm,
    BookingService,
    BookingStatus,
    Outcome,
)
from central.services.limits import FIELD_LIMITS
from core.cases import CHINA_TIME
from core.errors import Conflict, FieldError, InvalidInput
from core.fold import TERMINAL, CaseStatus
from core.intake import new_intake_key
from core.visits import PERIOD_STARTS, PERIODS
from sync.readmodel import CaseRow

__all__ = [
    "ServiceRequest",
    "RequestCreated",
    "RequestQuery",
    "OPEN311_FIELDS",
    "create_request",
    "find_requests",
    "parse_query",
]

MAX_RESULTS = 1000
DEFAULT_DAYS = 90

OPEN311_FIELDS: dict[str, str] = {
    "service_code": "item_code",
    "attribute[village]": "village",
    "attribute[id_number]": "id_number",
    "attribute[qualification]": "qualification",
    "attribute[qualification_note]": "qualification_note",
    "attribute[day]": "day",
    "attribute[period]": "period",
    "address_string": "address",
    "phone": "phone",
}
"""GeoReport parameter → the booking field it fills (and whose length limit it has)."""
_OTHER_LIMITS = {"first_name": 20, "last_name": 20, "description": 200, "email": 100,
                 "lat": 30, "long": 30, "device_id": 100, "account_id": 100,
                 "jurisdiction_id": 100, "api_key": 100, "address_id": 100,
                 "media_url": 300}  # fmt: skip
_BACK = {v: k for k, v in OPEN311_FIELDS.items()} | {"person_name": "last_name"}


class ServiceRequest(msgspec.Struct):
    """A service request as anyone may read it (field order as in the specification)."""

    service_request_id: str
    status: str
    status_notes: str
    service_name: str
    service_code: str
    agency_responsible: str
    service_notice: str
    requested_datetime: str
    updated_datetime: str
    expected_datetime: str | None


class RequestCreated(msgspec.Struct):
    """The answer to a POST: the new request's id and what the citizen must keep."""

    service_request_id: str
    service_notice: str
    account_id: str | None = None


def _open311_errors(exc: InvalidInput) -> InvalidInput:
    """The same errors named by their GeoReport parameters."""
    return InvalidInput(
        [FieldError(_BACK.get(e.field, e.field), e.message, e.message_en) for e in exc.errors]
    )


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(CHINA_TIME).isoformat(timespec="seconds")


def _visit_start(day: date, period: str) -> datetime:
    return datetime.combine(day, PERIOD_STARTS[period], tzinfo=CHINA_TIME)


# --- creating -------------------------------------------------------------------------------------


def _form(posted: Mapping[str, str]) -> tuple[BookingForm, str, str]:
    errors: list[FieldError] = []
    for name, value in posted.items():
        limit = _OTHER_LIMITS.get(name)
        if limit is None and name in OPEN311_FIELDS:
            limit = FIELD_LIMITS[OPEN311_FIELDS[name]][0]
        if limit is not None and len(value) > limit:
            errors.append(FieldError(name, f"{name} 不能超过{limit}个字", "Too long"))
    if errors:
        raise InvalidInput(errors)
    values = {field: posted.get(name, "").strip() for name, field in OPEN311_FIELDS.items()}
    name = posted.get("last_name", "").strip() + posted.get("first_name", "").strip()
    note = values["qualification_note"] or posted.get("description", "").strip()
    form = BookingForm(
        item_code=values["item_code"],
        village=values["village"],
        person_name=name,
        id_number=values["id_number"],
        address=values["address"],
        qualification=values["qualification"],
        qualification_note=note,
        phone=values["phone"],
    )
    return form, values["day"], values["period"]


def _wish(service: BookingService, township: str, day: str, period: str) -> tuple[date, str]:
    """The period asked for, or the earliest bookable one when none was."""
    if day or period:
        try:
            wanted = date.fromisoformat(day)
        except ValueError:
            raise InvalidInput(
                FieldError(
                    "attribute[day]", "日期格式应为 YYYY-MM-DD, 且须与时段一同填写", "Bad day"
                )
            ) from None
        if period not in PERIODS:
            raise InvalidInput(FieldError("attribute[period]", "时段须为 am 或 pm", "Bad period"))
        return wanted, period
    for view in service.days(township):
        for slot in view.periods:
            if slot.bookable:
                return slot.day, slot.period
    raise InvalidInput(
        FieldError(
            "attribute[day]", "近期没有可预约的上门时段, 请稍后再试或联系镇街服务中心", "Full"
        )
    )


def create_request(service: BookingService, posted: Mapping[str, str]) -> RequestCreated:
    """Book a home visit from a GeoReport POST; raise InvalidInput (GeoReport names) or
    Conflict (the period was taken meanwhile)."""
    try:
        form, day, period = _form(posted)
        checked = service.check(form)
        wanted, chosen = _wish(service, checked.township, day, period)
        outcome: Outcome = service.create(form, wanted, chosen, new_intake_key())
    except InvalidInput as exc:
        raise _open311_errors(exc) from None
    if not outcome.booked or outcome.booking is None:
        raise Conflict(outcome.message, "attribute[period]")
    booking = outcome.booking
    code = f"{booking.code[:4]}-{booking.code[4:]}"
    return RequestCreated(
        service_request_id=booking.visit_id,
        service_notice=f"{outcome.message} 预约码 {code}, "
        "凭预约码和联系电话可查询、改期、取消和评价, 请妥善保存。",
    )


# --- reading --------------------------------------------------------------------------------------


class RequestQuery(msgspec.Struct, frozen=True, kw_only=True):
    """The GeoReport filters of ``GET requests``."""

    ids: tuple[str, ...] = ()
    service_code: str = ""
    status: str = ""
    start: datetime | None = None
    end: datetime | None = None


def _moment(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            FieldError(name, f"{name} 应为 ISO 8601 时间, 如 2026-12-01T00:00:00+08:00", "Bad")
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=CHINA_TIME)


def parse_query(params: Mapping[str, str]) -> RequestQuery:
    """The filters from the query string; InvalidInput names every bad one."""
    errors: list[FieldError] = []
    ids = tuple(i.strip() for i in params.get("service_request_id", "").split(",") if i.strip())
    if len(ids) > 100 or any(len(i) > 40 for i in ids):
        errors.append(FieldError("service_request_id", "一次最多查询100个编号", "Too many"))
    status = params.get("status", "").strip()
    if status and status not in ("open", "closed"):
        errors.append(FieldError("status", "status 只能是 open 或 closed", "open or closed"))
    code = params.get("service_code", "").strip()
    if len(code) > 40:
        errors.append(FieldError("service_code", "service_code 过长", "Too long"))
    found: dict[str, datetime | None] = {"start_date": None, "end_date": None}
    for name in found:
        if params.get(name, "").strip():
            try:
                found[name] = _moment(name, params[name])
            except InvalidInput as exc:
                errors.extend(exc.errors)
    start, end = found["start_date"], found["end_date"]
    if start and end and start > end:
        errors.append(FieldError("start_date", "start_date 不能晚于 end_date", "start > end"))
    if errors:
        raise InvalidInput(errors)
    return RequestQuery(ids=ids, service_code=code, status=status, start=start, end=end)


def _closed() -> Any:
    return or_(
        Booking.status == BookingStatus.CANCELLED.value,
        and_(CaseRow.case_id.is_not(None), CaseRow.status.in_([s.value for s in TERMINAL])),
    )


def find_requests(session: Session, query: RequestQuery, now: datetime) -> list[ServiceRequest]:
    """The requests matching ``query`` (newest first; the last 90 days unless dates say else,
    or exactly the ids asked for)."""
    sql = select(Booking, CaseRow.status, CaseRow.due_on).outerjoin(
        CaseRow, CaseRow.case_id == Booking.case_id
    )
    if query.ids:
        sql = sql.where(Booking.visit_id.in_(query.ids))
    else:
        end = (query.end or now).astimezone(UTC)  # SQLite keeps UTC without an offset
        start = (query.start or end - timedelta(days=DEFAULT_DAYS)).astimezone(UTC)
        sql = sql.where(Booking.created_at >= start, Booking.created_at <= end)
        if query.service_code:
            sql = sql.where(Booking.item_code == query.service_code)
        if query.status == "closed":
            sql = sql.where(_closed())
        elif query.status == "open":
            sql = sql.where(~_closed())
    rows = session.execute(sql.order_by(Booking.created_at.desc()).limit(MAX_RESULTS)).all()
    names = {code: name for code, name in session.execute(select(Unit.code, Unit.name))}
    return [_shape(b, status, due, names) for b, status, due in rows]


def _shape(
    booking: Booking, case_status: str | None, due: date | None, names: dict[str, str]
) -> ServiceRequest:
    status = CaseStatus(case_status) if case_status else None
    closed = booking.status == BookingStatus.CANCELLED.value or status in TERMINAL
    when = f"{booking.day.isoformat()} {PERIODS[booking.period]}"
    notes = {
        "requested": f"已申请上门服务 ({when}), 待镇街服务中心确认",
        "scheduled": f"已预约上门服务: {when}",
        "cancelled": "上门预约已取消",
        "done": f"已上门服务 ({when})",
    }.get(booking.status, BookingStatus(booking.status).label)
    if status is not None and (booking.status == "done" or status in TERMINAL):
        notes += f"; 办件状态: {status.label}"
    expected: str | None = None
    if not closed:
        if booking.status in ("requested", "scheduled"):
            expected = _iso(_visit_start(booking.day, booking.period))
        elif due is not None:
            expected = _iso(datetime.combine(due, time(17, 30), tzinfo=CHINA_TIME))
    return ServiceRequest(
        service_request_id=booking.visit_id,
        status="closed" if closed else "open",
        status_notes=notes,
        service_name=booking.item_name,
        service_code=booking.item_code,
        agency_responsible=names.get(booking.township, booking.township),
        service_notice="",
        requested_datetime=_iso(booking.created_at),
        updated_datetime=_iso(booking.updated_at),
        expected_datetime=expected,
    )
