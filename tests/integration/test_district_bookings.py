"""Citizens' home-visit bookings at the district (issue 6), over a real network.

A district and a township pouchdb-server set up by sync.topology, the real township node
(its app served by uvicorn, catching up every 0.3 s), the district's SQL on SQLite (and the
booking service on PostgreSQL too), the district app's public pages through a test client.
The township offers slots on its calendar and publishes its availability, which replicates up.
The district registers the node at a closed port first ("unreachable"), later at its real
address. The tests run in file order on this one network: later ones use the bookings and
slots earlier ones left.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.db import make_engine, make_sessionmaker, migrate
from central.db.models import Booking, Notification
from central.services import hierarchy, outbox
from central.services.bookings import (
    BookingForm,
    BookingRules,
    BookingService,
    TownshipLink,
    TownshipUnavailable,
)
from central.services.nodes import register_node
from central.services.read_model import project_district
from central.settings import Settings
from core.calendar import WorkCalendar
from core.cases import local_date
from core.errors import InvalidInput, NotFound
from sync.couch import connect, couch_errors, save_document
from sync.devserver import PouchServer, free_port
from sync.readmodel import CaseRow
from sync.topology import setup_district
from tests.factories import resident_id
from tests.servers import join_district, publish_item, serve, staff_account
from tests.sql import throwaway_database
from tests.waiting import poll
from township import db as township_db
from township.app import create_app as create_township_app
from township.settings import TownshipSettings
from township.visits import Slot, publish_availability, set_offers, working_days

DISTRICT = "500109000000"
T = "500109102000"
A = "500109102001"
HARDSHIP = "500109DW0004"  # 困难党员帮扶申请: township-handled, door-to-door for the elderly…
STAFF, STAFF_NAME = "staff_t", "王五"
PHONE = "13800138000"
CSRF = "sanji_csrf"


PERSON_ID = resident_id("50010919400101123")


def _add_units(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        hierarchy.add_unit(session, DISTRICT, "北碚区")
        hierarchy.add_unit(session, T, "澄江镇")
        hierarchy.add_unit(session, A, "示例村")


@dataclass
class Network:
    """The running network and the district's SQL."""

    district: PouchServer
    township: PouchServer
    node_url: str
    closed_url: str
    database_url: str
    sessions: sessionmaker[Session]
    township_sessions: sessionmaker[Session]
    days: list[date]
    """The first five working days from tomorrow (offers are on the first four)."""

    def service(self, sessions: sessionmaker[Session] | None = None) -> BookingService:
        return BookingService(
            sessions or self.sessions,
            lambda: connect(self.district.url),
            TownshipLink(timeout=15.0),  # generous: a loaded CI machine must not turn a
            # reachable township into a "requested" booking (the closed port fails at once)
            BookingRules(),
        )

    def flush(self, sessions: sessionmaker[Session] | None = None) -> None:
        outbox.flush(sessions or self.sessions, lambda: connect(self.district.url))

    def register(self, url: str, sessions: sessionmaker[Session] | None = None) -> None:
        with (sessions or self.sessions)() as session:
            register_node(session, T, url)
        self.flush(sessions)


def _has(server_url: str, db: str, doc_id: str) -> bool:
    with couch_errors():
        return connect(server_url)[db].get(doc_id) is not None


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with PouchServer() as district, PouchServer() as township:
        d = connect(district.url)
        setup_district(district.url)
        database_url = f"sqlite:///{tmp_path_factory.mktemp('district') / 'district.sqlite'}"
        migrate(database_url)
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        _add_units(sessions)
        outbox.flush(sessions, lambda: d)
        save_document(d["directory"], staff_account(STAFF, STAFF_NAME, "x-pass-2026", T))
        publish_item(district.url, HARDSHIP)
        assert join_district(district, township.url, T).villages == [A]
        poll(lambda: _has(township.url, "directory", f"account:{STAFF}"), "the staff account")

        township_url = f"sqlite:///{tmp_path_factory.mktemp('township') / 'township.sqlite'}"
        township_db.migrate(township_url)
        township_engine = make_engine(township_url)
        township_sessions = make_sessionmaker(township_engine)
        today = local_date(datetime.now(UTC))
        calendar = WorkCalendar()
        days = [day for day in working_days(calendar, today, 7) if day > today][:5]
        # One staff slot on the first and second days' mornings; four on the third's; one
        # morning and one afternoon on the fourth. The fifth is nobody's (not published).
        crew = {STAFF: STAFF_NAME, "staff_u": "赵六", "staff_v": "钱七", "staff_w": "孙八"}
        set_offers(township_sessions, calendar, today, crew, days[:4],
                   {Slot(days[0], "am", STAFF), Slot(days[1], "am", STAFF),
                    *(Slot(days[2], "am", who) for who in crew),
                    Slot(days[3], "am", STAFF), Slot(days[3], "pm", STAFF)})  # fmt: skip
        publish_availability(township_sessions, connect(township.url)["township"], T, days[:4])
        for day in days[:4]:
            doc_id = f"visit_availability:{T}:{day.isoformat()}"
            poll(partial(_has, district.url, "district", doc_id), "the availability upward")

        node_settings = TownshipSettings(T, township.url, database_url=township_url,
                                         project_every=0.3)  # fmt: skip
        node, node_thread, node_url = serve(create_township_app(node_settings))
        try:
            yield Network(district, township, node_url, f"http://127.0.0.1:{free_port()}",
                          database_url, sessions, township_sessions, days)  # fmt: skip
        finally:
            node.should_exit = True
            node_thread.join(10)
            engine.dispose()
            township_engine.dispose()
        district.check_alive()
        township.check_alive()


@pytest.fixture(scope="module")
def client(net: Network) -> Iterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(Settings(database_url=net.database_url, couchdb_url=net.district.url))
    with TestClient(app) as client:
        client.get("/visit")
        yield client


def post(client: TestClient, path: str, **data: str) -> Any:  # type: ignore[type-arg]
    """A form post carrying the CSRF token, without following redirects."""
    return client.post(path, data={**data, "_csrf_token": client.cookies[CSRF]},
                       follow_redirects=False)  # fmt: skip


def _form(**changes: str) -> BookingForm:
    values = {"item_code": HARDSHIP, "village": A, "person_name": "张奶奶",
              "id_number": PERSON_ID, "address": "示例村3组12号", "qualification": "elderly",
              "qualification_note": "", "phone": PHONE}  # fmt: skip
    return BookingForm(**{**values, **changes})


def _key() -> str:
    return f"k{datetime.now(UTC).timestamp()}"


def _catch_up(net: Network, service: BookingService, sessions: sessionmaker[Session]) -> int:
    project_district(sessions, connect(net.district.url))
    return service.reconcile()


# --- validation -----------------------------------------------------------------------------------


def test_the_form_refuses_bad_input_in_chinese(net: Network, client: TestClient) -> None:  # type: ignore[type-arg]
    page = client.get("/visit")
    assert page.status_code == 200
    assert "困难党员帮扶申请" in page.text and "示例村" in page.text
    bad = post(client, "/visit", item_code=HARDSHIP, village=A, person_name="",
               id_number="500109194001011231", address="x", qualification="",
               phone="12345")  # fmt: skip
    assert bad.status_code == 400
    for message in ("请填写需要上门服务的人的姓名", "身份证", "请填写详细住址",
                    "请选择上门服务的原因", "手机号码"):  # fmt: skip
        assert message in bad.text, message
    other = post(client, "/visit", item_code=HARDSHIP, village=A, person_name="李",
                 id_number=PERSON_ID, address="示例村1组1号", qualification="other",
                 phone=PHONE)  # fmt: skip
    assert other.status_code == 400 and "请简要说明情况" in other.text
    no_post = client.post("/visit", data={"item_code": HARDSHIP}, follow_redirects=False)
    assert no_post.status_code == 403  # no CSRF token


def test_periods_outside_the_rules_are_refused(net: Network) -> None:
    service = net.service()
    net.register(net.closed_url)
    saturday = next(d for d in (net.days[0].fromordinal(net.days[0].toordinal() + i)
                                for i in range(7)) if d.weekday() == 5)  # fmt: skip
    far = net.days[0].fromordinal(net.days[0].toordinal() + 60)
    cases = [
        (saturday, "am", "不可预约"),
        (far, "am", "不可预约"),
        (net.days[0], "pm", "已约满"),  # nobody offers that afternoon
        (net.days[0], "night", "请选择上午或下午"),
    ]
    for day, period, message in cases:
        with pytest.raises(InvalidInput) as refused:
            service.create(_form(), day, period, _key())
        assert message in str(refused.value), (day, period)
    with pytest.raises(InvalidInput) as not_eligible:
        service.create(_form(item_code="500109ZW0001"), net.days[0], "am", _key())
    assert "请选择一项提供上门服务的事项" in str(not_eligible.value)
    with net.sessions() as session:
        assert session.query(Booking).count() == 0  # nothing written for a refused form


# --- township unreachable → requested → confirmed by its catch-up ---------------------------------


def test_unreachable_township_leaves_it_requested_until_its_catch_up_confirms(
    net: Network,
) -> None:
    net.register(net.closed_url)
    service = net.service()
    outcome = service.create(_form(), net.days[0], "am", _key())
    booking = outcome.booking
    assert outcome.booked and booking is not None
    assert booking.status == "requested" and "确认后会通知您" in outcome.message
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{8}", booking.code)
    assert _has(net.district.url, "district", booking.case_id)

    # The case went down by replication; the node's catch-up takes the free morning slot and
    # writes visit_scheduled, which comes back up; the district's reconciliation follows it.
    def scheduled() -> bool:
        _catch_up(net, service, net.sessions)
        with net.sessions() as session:
            row = session.get(Booking, booking.code)
            return row is not None and row.status == "scheduled"

    poll(scheduled, "the township to confirm the requested visit", timeout=40)
    with net.sessions() as session:
        row = session.get(Booking, booking.code)
        assert row is not None and row.staff_name == STAFF_NAME
        assert (row.day, row.period) == (net.days[0], "am")
    assert _catch_up(net, service, net.sessions) == 0  # nothing changes twice
    # The citizen was told both times: when it was requested, and when the township confirmed.
    with net.sessions() as session:
        told = session.scalars(
            select(Notification.kind)
            .where(Notification.booking_code == booking.code)
            .order_by(Notification.id)
        ).all()
    assert list(told) == ["requested", "confirmed"]

    # The slot is taken: the published availability (replicated up) says the period is full.
    def full() -> bool:
        day = next(v for v in service.days(T) if v.day == net.days[0])
        return day.periods[0].free == 0

    poll(full, "the township's availability to show the morning full")


def test_cancel_changes_nothing_while_the_township_is_unreachable(net: Network) -> None:
    net.register(net.closed_url)
    service = net.service()
    with net.sessions() as session:
        booking = session.query(Booking).filter(Booking.status == "scheduled").first()
        assert booking is not None
        code = booking.code
    with pytest.raises(TownshipUnavailable) as refused:
        service.cancel(code, PHONE)
    assert "没有取消" in str(refused.value)
    with net.sessions() as session:
        row = session.get(Booking, code)
        assert row is not None and row.status == "scheduled"


# --- look-up and progress through the pages -------------------------------------------------------


def test_book_through_the_pages_then_look_it_up_only_with_the_right_phone(
    net: Network,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    net.register(net.closed_url)
    step1 = post(client, "/visit", item_code=HARDSHIP, village=A, person_name="李爷爷",
                 id_number=resident_id("50010919380202123"), address="示例村2组5号",
                 qualification="bedridden", phone="138 0013 8001")  # fmt: skip
    assert step1.status_code in (302, 303), step1.text
    periods = client.get("/visit/periods")
    slot = f"{net.days[1].isoformat()}|am"
    assert f'value="{slot}"' in periods.text and "已约满" in periods.text
    assert post(client, "/visit/periods", slot=slot).headers["location"] == "/visit/confirm"
    summary = client.get("/visit/confirm")
    assert "李爷爷" in summary.text and "卧床不起" in summary.text
    done = post(client, "/visit/confirm")
    assert done.status_code == 200 and "已提交申请" in done.text
    code = re.search(r'id="booking-code">([0-9A-Z]{4}-[0-9A-Z]{4})<', done.text)
    assert code is not None
    assert "镇街服务中心暂时未能确认" in done.text

    client.cookies.clear()
    client.get("/visit/lookup")
    wrong = post(client, "/visit/lookup", code=code[1], phone="13900000000")
    assert wrong.status_code == 404 and "预约码或联系电话不正确" in wrong.text
    unknown = post(client, "/visit/lookup", code="ZZZZ-ZZZZ", phone="13800138001")
    assert unknown.status_code == 404 and "预约码或联系电话不正确" in unknown.text
    assert client.get("/visit/booking", follow_redirects=False).status_code in (302, 303)
    right = post(client, "/visit/lookup", code=code[1].lower(), phone="+86 138-0013-8001")
    assert right.headers["location"] == "/visit/booking"
    page = client.get("/visit/booking")
    assert code[1] in page.text and "困难党员帮扶申请" in page.text
    assert "李爷爷" not in page.text and "示例村2组5号" not in page.text


def test_progress_lookup_shows_the_state_and_nothing_personal(
    net: Network,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    project_district(net.sessions, connect(net.district.url))
    with net.sessions() as session:
        booking = session.query(Booking).filter(Booking.phone == PHONE).first()
        assert booking is not None
        number = booking.case_number
    client.get("/progress")
    wrong = post(client, "/progress", case_number=number, phone="13900000000")
    assert wrong.status_code == 404 and "没有找到这个办件" in wrong.text
    garbage = post(client, "/progress", case_number="not-a-number", phone=PHONE)
    assert garbage.status_code == 404
    found = post(client, "/progress", case_number=number.lower(), phone=PHONE)
    assert found.status_code == 200
    assert number in found.text and "困难党员帮扶申请" in found.text
    assert re.search(r"已提交|已接收|已受理", found.text)
    assert "上门服务" in found.text  # the visit, with its day and status
    for private in ("张奶奶", PERSON_ID, "示例村3组12号", PHONE, STAFF_NAME):
        assert private not in found.text, private


# --- the booking SQL on PostgreSQL (and SQLite) ---------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def other_sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[sessionmaker[Session]]:
    with throwaway_database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        _add_units(sessions)
        sessions().close()
        yield sessions
        engine.dispose()


def test_the_booking_service_on_each_sql_backend(
    net: Network, other_sessions: sessionmaker[Session]
) -> None:
    net.register(net.closed_url, other_sessions)
    service = net.service(other_sessions)
    key = _key()
    outcome = service.create(_form(phone="13800138002"), net.days[2], "am", key)
    assert outcome.booking is not None and outcome.booking.status == "requested"
    again = service.create(_form(phone="13800138002"), net.days[2], "am", key)
    assert again.booking is not None and again.booking.code == outcome.booking.code  # idempotent
    found = service.find(outcome.booking.code, "13800138002")
    assert found.case_id == outcome.booking.case_id
    with pytest.raises(NotFound):
        service.find(outcome.booking.code, "13800138003")
    project_district(other_sessions, connect(net.district.url))
    service.reconcile()  # the booking SQL's join with the read model runs on this backend
    with other_sessions() as session:
        row = session.get(Booking, outcome.booking.code)
        assert row is not None and row.status in ("requested", "scheduled")


# --- a township that answers (the contract's API) ------------------------------------------------


def _free(service: BookingService, day: date, period: str) -> int:
    view = next(v for v in service.days(T) if v.day == day)
    return next(p.free for p in view.periods if p.period == period)


def _case_status(net: Network, case_id: str) -> str | None:
    project_district(net.sessions, connect(net.district.url))
    with net.sessions() as session:
        row = session.get(CaseRow, case_id)
        return row.status if row is not None else None


def test_a_reachable_township_schedules_at_once_then_moves_and_cancels(net: Network) -> None:
    net.register(net.node_url)
    service = net.service()
    day = net.days[3]
    outcome = service.create(_form(phone="13800138010"), day, "am", _key())
    booking = outcome.booking
    assert outcome.booked and booking is not None
    assert booking.status == "scheduled" and booking.staff_name == STAFF_NAME
    assert "预约成功" in outcome.message
    poll(lambda: _free(service, day, "am") == 0, "the morning to show full at the district")

    with pytest.raises(InvalidInput) as wrong:  # the same period again is no move
        service.move(booking.code, "13800138010", day, "am")
    assert "请另选" in str(wrong.value)
    moved = service.move(booking.code, "13800138010", day, "pm")
    assert moved.booking is not None and moved.booking.period == "pm"
    assert moved.booking.status == "scheduled"
    poll(lambda: _free(service, day, "am") == 1, "the old morning slot to be free again")
    poll(lambda: _free(service, day, "pm") == 0, "the afternoon to show full")

    cancelled = service.cancel(booking.code, "13800138010")
    assert cancelled.booking is not None and cancelled.booking.status == "cancelled"
    poll(lambda: _free(service, day, "pm") == 1, "the cancelled slot to be free at once")
    poll(lambda: _case_status(net, booking.case_id) == "withdrawn", "the case withdrawn")
    with pytest.raises(Exception, match="已取消"):
        service.cancel(booking.code, "13800138010")


def test_a_period_taken_meanwhile_books_nothing_and_withdraws_the_case(net: Network) -> None:
    net.register(net.node_url)
    service = net.service()
    day = net.days[4]
    # The district's copy of the availability says one slot is free, but the township has
    # nobody that day: its calendar answers 409, as when the last slot just went elsewhere.
    stale = {"_id": f"visit_availability:{T}:{day.isoformat()}", "type": "visit_availability",
             "township": T, "day": day.isoformat(),
             "periods": {"am": {"label": "上午", "capacity": 1, "free": 1},
                         "pm": {"label": "下午", "capacity": 0, "free": 0}}}  # fmt: skip
    save_document(connect(net.district.url)["district"], stale)
    outcome = service.create(_form(phone="13800138011"), day, "am", _key())
    assert not outcome.booked
    assert "已约满" in outcome.message and "没有预约成功" in outcome.message
    booking = outcome.booking
    assert booking is not None and booking.status == "cancelled"
    poll(lambda: _case_status(net, booking.case_id) == "withdrawn", "the case withdrawn")


def test_cancel_on_the_page_frees_the_slot(net: Network, client: TestClient) -> None:  # type: ignore[type-arg]
    net.register(net.node_url)
    service = net.service()
    with net.sessions() as session:
        booked = session.query(Booking).filter(Booking.phone == "13800138001").one()
        code, day = booked.code, booked.day

    def scheduled() -> bool:  # booked while the township was down: its catch-up confirmed it
        _catch_up(net, service, net.sessions)
        return service.find(code, "13800138001").status == "scheduled"

    poll(scheduled, "the page's booking to be confirmed", timeout=40)
    assert _free(service, day, "am") == 0
    client.cookies.clear()
    client.get("/visit/lookup")
    post(client, "/visit/lookup", code=code, phone="13800138001")
    page = client.get("/visit/booking")
    assert "已预约成功" in page.text and STAFF_NAME in page.text
    assert 'href="/visit/booking/move"' in page.text
    move_page = client.get("/visit/booking/move")
    assert move_page.status_code == 200 and "现在预约的时间" in move_page.text
    cancelled = post(client, "/visit/booking/cancel")
    assert cancelled.status_code == 200 and "预约已取消, 该时段已释放" in cancelled.text
    assert "已取消" in cancelled.text and "/visit/booking/cancel" not in cancelled.text
    poll(lambda: _free(service, day, "am") == 1, "the slot to be free again")
