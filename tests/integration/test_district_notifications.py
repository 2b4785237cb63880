"""Citizens' notifications at the district (issue 6 item 6): the outbox, the day-before reminder
exactly once (across two app starts and two job runs, with a fixed clock), each message sent
once, the result notice when the case is completed, and the administrators' page.

The network of ``test_district_bookings`` (its module-scoped ``net`` fixture, fresh for this
module): pouchdb-servers, the real township node, the district's SQL on SQLite; the outbox's
claim is also run concurrently on PostgreSQL.
"""

from __future__ import annotations

import threading
import time as clock
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.app import _notify, create_app
from central.db import make_engine, make_sessionmaker, migrate
from central.db.models import Account, Booking, Notification
from central.services import accounts
from central.services.notifications import (
    MAX_ATTEMPTS,
    Message,
    SendFailed,
    enqueue_booking_notice,
    enqueue_reminders,
    enqueue_results,
    send_pending,
)
from central.services.read_model import project_district
from central.settings import Settings
from core.cases import (
    CHINA_TIME,
    Accepted,
    Completed,
    Delivery,
    VisitOutcome,
    VisitRecorded,
    case_from_doc,
)
from sync.couch import connect, couch_errors
from sync.readmodel import CaseRow
from sync.writer import EventWriter
from tests.integration import test_district_bookings as base
from tests.sql import throwaway_database
from tests.waiting import poll

net = base.net  # this module's own network (module scope)


class FakeSender:
    """Records what it was asked to send (optionally slowly, or failing)."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.sent: list[Message] = []
        self.delay = delay
        self.fail = fail
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        if self.fail:
            raise SendFailed("短信网关无应答")
        clock.sleep(self.delay)
        with self._lock:
            self.sent.append(message)


def _notices(sessions: sessionmaker[Session], code: str) -> list[tuple[str, str]]:
    with sessions() as session:
        rows = session.scalars(
            select(Notification).where(Notification.booking_code == code).order_by(Notification.id)
        ).all()
        return [(r.kind, r.status) for r in rows]


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=CHINA_TIME)


def _ready(net: base.Network) -> None:
    """The township node trusts the district's key (its directory document came down)."""
    net.register(net.node_url)

    def known() -> bool:
        with couch_errors():
            return connect(net.township.url)["directory"].get(f"township_node:{base.T}") is not None

    poll(known, "the node's key at the township")


def test_each_change_of_a_booking_queues_its_message(net: base.Network) -> None:
    _ready(net)
    service = net.service()
    day = net.days[3]
    outcome = service.create(base._form(phone="13800138020"), day, "am", base._key())
    booking = outcome.booking
    assert booking is not None and booking.status == "scheduled", outcome.message
    assert _notices(net.sessions, booking.code) == [("confirmed", "pending")]
    service.move(booking.code, "13800138020", day, "pm")
    service.cancel(booking.code, "13800138020")
    assert [k for k, _ in _notices(net.sessions, booking.code)] == [
        "confirmed",
        "changed",
        "cancelled",
    ]
    with net.sessions() as session:
        bodies = session.scalars(
            select(Notification.body).where(Notification.booking_code == booking.code)
        ).all()
    assert "已确认" in bodies[0] and "上午" in bodies[0]
    assert "已改到" in bodies[1] and "下午" in bodies[1]
    assert "已取消" in bodies[2]
    code = f"{booking.code[:4]}-{booking.code[4:]}"
    assert all(code in b and "困难党员帮扶申请" in b for b in bodies)

    sender = FakeSender()
    assert send_pending(net.sessions, sender) >= 3
    assert send_pending(net.sessions, sender) == 0  # nothing twice
    assert [m.kind.value for m in sender.sent if code in m.body] == [
        "confirmed",
        "changed",
        "cancelled",
    ]
    assert all(s == "sent" for _, s in _notices(net.sessions, booking.code))


def test_the_reminder_is_queued_and_sent_exactly_once_across_restarts(net: base.Network) -> None:
    _ready(net)
    service = net.service()
    day = net.days[2]
    outcome = service.create(base._form(phone="13800138021"), day, "am", base._key())
    booking = outcome.booking
    assert booking is not None and booking.status == "scheduled", outcome.message
    send_pending(net.sessions, FakeSender())  # the confirmation out of the way

    # Too early: two days before, and the evening before 08:00 the day before.
    assert enqueue_reminders(net.sessions, _at(day - timedelta(days=2), 10)) == 0
    assert enqueue_reminders(net.sessions, _at(day - timedelta(days=1), 7)) == 0
    the_day_before = _at(day - timedelta(days=1), 10)

    sent: list[Message] = []
    for start in range(2):  # two app starts on the same database, the same fixed clock
        app = create_app(Settings(database_url=net.database_url, couchdb_url=net.district.url))
        sender = FakeSender()
        app.state.sender = sender
        app.state.bookings.now = lambda: the_day_before
        with TestClient(app):
            _notify(app.state)  # a job run of our own besides the loop's first round
            _notify(app.state)
            if start == 0:
                poll(lambda s=sender: any(m.kind.value == "reminder" for m in s.sent),
                     "the reminder to be sent")  # fmt: skip
        sent += [m for m in sender.sent if m.kind.value == "reminder"]
    assert len(sent) == 1, sent
    assert "明天" in sent[0].body and sent[0].phone == "13800138021"
    reminders = [k for k, _ in _notices(net.sessions, booking.code) if k == "reminder"]
    assert reminders == ["reminder"]

    # The visit moved to another day: that day gets its own reminder, once.
    with net.sessions() as session:
        row = session.get(Booking, booking.code)
        assert row is not None
        row.day = net.days[3]
        session.commit()
    later = _at(net.days[3] - timedelta(days=1), 9)
    assert enqueue_reminders(net.sessions, later) == 1
    assert enqueue_reminders(net.sessions, later) == 0


def _complete_at_the_township(net: base.Network, booking: Booking) -> None:
    """Township staff accept the case, record the visit and complete it (their events,
    written into the township's database, replicate up)."""
    database = connect(net.township.url)["township"]
    poll(lambda: database.get(booking.case_id) is not None, "the case at the township")
    with couch_errors():
        doc = database.get(booking.case_id)
    case = case_from_doc(doc)
    EventWriter(net.township_sessions, base.T).append(
        database,
        case,
        [
            Accepted(note="上门受理"),
            VisitRecorded(visit_id=booking.visit_id, outcome=VisitOutcome.DONE),
            Completed(result="已办结", delivery=Delivery.AT_HOME),
        ],
        author=f"staff:{base.STAFF}",
    )


def _case_status(net: base.Network, case_id: str) -> str | None:
    project_district(net.sessions, connect(net.district.url))
    with net.sessions() as session:
        row = session.get(CaseRow, case_id)
        return row.status if row is not None else None


def test_result_ready_once_when_the_case_is_completed(net: base.Network) -> None:
    _ready(net)
    service = net.service()
    outcome = service.create(base._form(phone="13800138022"), net.days[2], "am", base._key())
    booking = outcome.booking
    assert booking is not None and booking.status == "scheduled", outcome.message
    assert enqueue_results(net.sessions) == 0
    _complete_at_the_township(net, booking)
    poll(lambda: _case_status(net, booking.case_id) == "completed", "the case completed upward")
    assert enqueue_results(net.sessions) == 1
    assert enqueue_results(net.sessions) == 0
    kinds = [k for k, _ in _notices(net.sessions, booking.code)]
    assert kinds.count("result_ready") == 1


# --- the outbox's claim, concurrently, on each SQL backend ----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox_sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[sessionmaker[Session]]:
    with throwaway_database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()


def _booking(code: str, phone: str) -> Booking:
    now = datetime.now(UTC)
    return Booking(code=code, request_key=f"key-{code}", case_id=f"case-{code}",
                   case_number=f"N-{code}", visit_id=f"v{code}", township=base.T, village=base.A,
                   item_code=base.HARDSHIP, item_name="困难党员帮扶申请", person_name="某",
                   address="示例村1组1号", qualification="elderly", qualification_note="",
                   phone=phone, day=date(2026, 12, 1), period="am", status="scheduled",
                   staff_name="", note="", case_hlc="", created_at=now, updated_at=now)  # fmt: skip


def test_two_senders_at_once_send_each_message_once(
    outbox_sessions: sessionmaker[Session],
) -> None:
    with outbox_sessions() as session:
        for i in range(10):
            booking = _booking(f"AAAA{i:04d}", f"1380013{i:04d}")
            session.add(booking)
            session.flush()
            enqueue_booking_notice(session, "confirmed", booking)
            enqueue_booking_notice(session, "done", booking)  # no message for this one
        session.commit()
    senders = [FakeSender(delay=0.02), FakeSender(delay=0.02)]
    threads = [threading.Thread(target=send_pending, args=(outbox_sessions, s)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ids = [m.id for s in senders for m in s.sent]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 10
    with outbox_sessions() as session:
        statuses = session.scalars(select(Notification.status)).all()
    assert statuses == ["sent"] * 10


def test_a_failing_sender_retries_then_gives_up(outbox_sessions: sessionmaker[Session]) -> None:
    with outbox_sessions() as session:
        booking = _booking("BBBB0001", "13800139999")
        session.add(booking)
        session.flush()
        enqueue_booking_notice(session, "cancelled", booking)
        session.commit()
    for _ in range(MAX_ATTEMPTS):
        assert send_pending(outbox_sessions, FakeSender(fail=True)) == 0
    with outbox_sessions() as session:
        row = session.scalars(select(Notification)).one()
        assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
        assert "短信网关无应答" in row.last_error
    assert send_pending(outbox_sessions, FakeSender()) == 0  # a failed message stays failed


# --- the administrators' page ---------------------------------------------------------------------


def test_the_admin_page_lists_filters_and_searches(net: base.Network) -> None:
    with net.sessions() as session:
        if session.get(Account, "notice.admin") is None:
            accounts.create_account(session, "notice.admin", "管理员", "district_admin",
                                    base.DISTRICT, "admin-pass-1")  # fmt: skip
    app = create_app(Settings(database_url=net.database_url, couchdb_url=net.district.url))
    app.state.sender = FakeSender()
    with TestClient(app) as client:
        assert client.get("/notices", follow_redirects=False).status_code in (302, 303)
        client.get("/login")
        base.post(client, "/login", username="notice.admin", password="admin-pass-1", next="/")
        page = client.get("/notices")
        assert page.status_code == 200 and "群众通知" in page.text
        assert "预约确认" in page.text and "13800138020" in page.text
        reminders = client.get("/notices", params={"kind": "reminder"})
        assert "13800138021" in reminders.text and "13800138020" not in reminders.text
        assert "上门前一天提醒" in reminders.text
        by_phone = client.get("/notices", params={"q": "138 0013 8022"})
        assert "13800138022" in by_phone.text and "13800138021" not in by_phone.text
        with net.sessions() as session:
            code = session.scalars(
                select(Notification.booking_code).where(Notification.phone == "13800138020")
            ).first()
        assert code is not None
        by_code = client.get("/notices", params={"q": f"{code[:4]}-{code[4:]}".lower()})
        assert "13800138020" in by_code.text and "13800138022" not in by_code.text
        pending = client.get("/notices", params={"status": "failed"})
        assert "没有符合条件的通知" in pending.text
