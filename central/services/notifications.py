"""Notifications to citizens about their home-visit bookings (issue 6 item 6): an outbox in SQL.

Messages are rows of ``notifications``, written in the transaction of the change they tell
about (the booking service's ``notify`` seam calls ``enqueue_booking_notice``), so a change
and its message commit together or not at all. Kinds:

* ``requested`` / ``confirmed`` / ``changed`` / ``cancelled`` — one message per change of a
  booking (``visit_day`` NULL: every change gets its own row);
* ``reminder`` — the day before the visit, enqueued by ``enqueue_reminders`` from the
  background loop;
* ``result_ready`` — when the booking's case is completed in the district's read model,
  enqueued by ``enqueue_results``.

Exactly once: a reminder and a result notice carry the visit day, and the table is unique on
(booking, kind, visit day). A second job run, a restart or a second server process cannot add
another: its insert fails on the constraint and is skipped. Nothing is remembered in memory.

Sending: ``send_pending`` takes one pending row at a time in its own transaction. The claim is
an ``UPDATE … WHERE id = :id AND status = 'pending'`` (it takes PostgreSQL's row lock, and
SQLite's write lock): a concurrent sender waits, then sees the row sent and skips it. The
sender is called while that transaction is open and the row is marked ``sent`` in the same
transaction — claim and mark are one commit, so no row is ever left "claimed" by a dead
process. The one window left: a crash after the gateway took the message and before the
commit sends that message again on the next run (at least once; the window is one commit).
A sender that raises ``SendFailed`` leaves the row pending for the next run; after
``MAX_ATTEMPTS`` it is marked ``failed`` and shown so on the admin page.

The sender is pluggable (``Sender``); ``LogSender``, the default, only logs — an SMS gateway
is outside the project.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import Booking, Notification
from core.cases import CHINA_TIME
from core.visits import PERIODS
from sync.readmodel import CaseRow

__all__ = [
    "NoticeKind",
    "NoticeStatus",
    "Message",
    "Sender",
    "SendFailed",
    "LogSender",
    "MAX_ATTEMPTS",
    "REMINDER_FROM",
    "enqueue_booking_notice",
    "enqueue_reminders",
    "enqueue_results",
    "send_pending",
    "NoticeFilter",
    "list_notices",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
"""A message the sender refused this many times is marked failed."""
REMINDER_FROM = time(8, 0)
"""Day-before reminders are enqueued from this time (China time), not at midnight."""


class NoticeKind(StrEnum):
    """What a message tells the citizen."""

    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    REMINDER = "reminder"
    CHANGED = "changed"
    CANCELLED = "cancelled"
    RESULT_READY = "result_ready"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "requested": "已受理申请",
            "confirmed": "预约确认",
            "reminder": "上门前一天提醒",
            "changed": "预约变更",
            "cancelled": "预约取消",
            "result_ready": "办理结果",
        }[self.value]


class NoticeStatus(StrEnum):
    """Where a message stands."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"pending": "待发送", "sent": "已发送", "failed": "发送失败"}[self.value]


@dataclass(frozen=True)
class Message:
    """One message as a sender sees it (never the ORM row)."""

    id: int
    phone: str
    kind: NoticeKind
    body: str


class SendFailed(Exception):
    """The sender could not deliver the message now; it is tried again later."""


class Sender(Protocol):
    """Delivers messages to citizens (an SMS gateway in production)."""

    def send(self, message: Message) -> None:
        """Deliver ``message``; raise SendFailed when it could not be delivered."""


class LogSender:
    """The default sender: writes each message to the log (the admin page lists them)."""

    def send(self, message: Message) -> None:
        """Log the message."""
        log.info("notice %s to %s: %s", message.kind.value, message.phone, message.body)


# --- writing messages -----------------------------------------------------------------------------


def _when(booking: Booking) -> str:
    return f"{booking.day.month}月{booking.day.day}日{PERIODS.get(booking.period, booking.period)}"


def _body(kind: NoticeKind, booking: Booking) -> str:
    code = f"{booking.code[:4]}-{booking.code[4:]}"
    item = booking.item_name
    text = {
        NoticeKind.REQUESTED: f"您预约的“{item}”上门服务({_when(booking)})已收到申请, "
        "镇街服务中心确认后会再通知您。",
        NoticeKind.CONFIRMED: f"您预约的“{item}”上门服务已确认: {_when(booking)}, "
        "工作人员会按时上门。",
        NoticeKind.REMINDER: f"提醒: 明天({_when(booking)})工作人员将上门办理“{item}”, "
        "请备好相关材料并保持电话畅通。",
        NoticeKind.CHANGED: f"您预约的“{item}”上门服务已改到 {_when(booking)}。",
        NoticeKind.CANCELLED: f"您预约的“{item}”上门服务({_when(booking)})已取消。"
        + (f" 说明: {booking.note}" if booking.note else ""),
        NoticeKind.RESULT_READY: f"您的“{item}”已办结(办件编号 {booking.case_number}), "
        "可凭办件编号和本手机号查询结果, 欢迎凭预约码对本次服务进行评价。",
    }[kind]
    return f"【三级四务】{text} 预约码 {code}。"[:500]


def _add(session: Session, kind: NoticeKind, booking: Booking, visit_day: date | None) -> None:
    session.add(
        Notification(
            booking_code=booking.code,
            case_number=booking.case_number,
            kind=kind.value,
            visit_day=visit_day,
            phone=booking.phone,
            body=_body(kind, booking),
            status=NoticeStatus.PENDING.value,
            attempts=0,
            last_error="",
            created_at=datetime.now(UTC),
        )
    )


_SEAM_KINDS = {
    "requested": NoticeKind.REQUESTED,
    "confirmed": NoticeKind.CONFIRMED,
    "changed": NoticeKind.CHANGED,
    "cancelled": NoticeKind.CANCELLED,
}


def enqueue_booking_notice(session: Session, kind: str, booking: Booking) -> None:
    """The booking service's notify seam: queue the message for this change of ``booking`` in
    the caller's transaction. ``done`` (the visit was recorded) sends nothing: the citizen
    hears when the case is completed (``result_ready``)."""
    found = _SEAM_KINDS.get(kind)
    if found is None:
        log.info("booking %s: %s (no message)", booking.code, kind)
        return
    _add(session, found, booking, None)


def _add_once(session: Session, kind: NoticeKind, booking: Booking) -> bool:
    """Queue ``kind`` for the booking's visit day unless it is there already (by constraint)."""
    try:
        with session.begin_nested():
            _add(session, kind, booking, booking.day)
    except IntegrityError:
        return False
    return True


def _not_queued(kind: NoticeKind) -> ColumnElement[bool]:
    return ~exists().where(
        Notification.booking_code == Booking.code,
        Notification.kind == kind.value,
        Notification.visit_day == Booking.day,
    )


def enqueue_reminders(sessions: sessionmaker[Session], now: datetime) -> int:
    """Queue the day-before reminder of every scheduled visit tomorrow (China time) that has
    none yet, from ``REMINDER_FROM``; return how many were queued."""
    local = now.astimezone(CHINA_TIME)
    if local.time() < REMINDER_FROM:
        return 0
    tomorrow = local.date() + timedelta(days=1)
    queued = 0
    with sessions() as session:
        due = session.scalars(
            select(Booking).where(
                Booking.status == "scheduled",
                Booking.day == tomorrow,
                _not_queued(NoticeKind.REMINDER),
            )
        ).all()
        for booking in due:
            queued += _add_once(session, NoticeKind.REMINDER, booking)
        session.commit()
    return queued


def enqueue_results(sessions: sessionmaker[Session]) -> int:
    """Queue ``result_ready`` for every booking whose case the district's read model shows
    completed and that has none yet; return how many were queued."""
    queued = 0
    with sessions() as session:
        done = session.scalars(
            select(Booking)
            .join(CaseRow, CaseRow.case_id == Booking.case_id)
            .where(CaseRow.status == "completed", _not_queued(NoticeKind.RESULT_READY))
        ).all()
        for booking in done:
            queued += _add_once(session, NoticeKind.RESULT_READY, booking)
        session.commit()
    return queued


# --- sending --------------------------------------------------------------------------------------


def send_pending(
    sessions: sessionmaker[Session],
    sender: Sender,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    limit: int = 200,
) -> int:
    """Send pending messages oldest first, each claimed and marked in one transaction (see the
    module docstring); return how many were sent."""
    with sessions() as session:
        ids = session.scalars(
            select(Notification.id)
            .where(Notification.status == NoticeStatus.PENDING.value)
            .order_by(Notification.id)
            .limit(limit)
        ).all()
    sent = 0
    for notice_id in ids:
        sent += _send_one(sessions, sender, notice_id, now)
    return sent


def _send_one(
    sessions: sessionmaker[Session], sender: Sender, notice_id: int, now: Callable[[], datetime]
) -> bool:
    with sessions() as session:
        claimed = session.execute(
            update(Notification)
            .where(Notification.id == notice_id, Notification.status == NoticeStatus.PENDING.value)
            .values(attempts=Notification.attempts + 1)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return False  # another sender had it
        row = session.get(Notification, notice_id)
        assert row is not None
        message = Message(row.id, row.phone, NoticeKind(row.kind), row.body)
        try:
            sender.send(message)
        except SendFailed as exc:
            row.last_error = str(exc)[:300]
            if row.attempts >= MAX_ATTEMPTS:
                row.status = NoticeStatus.FAILED.value
            session.commit()
            log.warning("notice %s not sent: %s", notice_id, exc)
            return False
        row.status = NoticeStatus.SENT.value
        row.sent_at = now()
        row.last_error = ""
        session.commit()
        return True


# --- the admin list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeFilter:
    """What the admin page asks for."""

    kind: str = ""
    status: str = ""
    q: str = ""
    """A phone number (or part of one), a booking code or a case number."""


def list_notices(
    session: Session, wanted: NoticeFilter, limit: int = 200
) -> tuple[list[Notification], int]:
    """The newest messages that match, and how many match in all."""
    query = select(Notification)
    if wanted.kind in set(NoticeKind):
        query = query.where(Notification.kind == wanted.kind)
    if wanted.status in set(NoticeStatus):
        query = query.where(Notification.status == wanted.status)
    q = wanted.q.strip()
    if q:
        terms: list[ColumnElement[bool]] = [Notification.case_number == q]
        compact = "".join(q.split()).replace("-", "").removeprefix("+86")
        if compact.isdigit() and len(compact) >= 4:  # a phone number or a part of one
            terms.append(Notification.phone.contains(compact))
        if compact.isalnum() and len(compact) == 8:  # a booking code, as printed or typed
            terms.append(Notification.booking_code == compact.upper())
        query = query.where(or_(*terms))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Notification.id.desc()).limit(limit)).all()
    return list(rows), total


def kinds() -> Iterable[NoticeKind]:
    """The kinds, for the filter."""
    return tuple(NoticeKind)
