"""The citizen rates a booked home visit online (issue 6 item 7) and the public face's abuse limits
(item 9): caps on open bookings per phone and address, rate limiting per client address, input
length limits, errors in plain Chinese.

The network of ``test_district_bookings`` (its module-scoped ``net`` fixture, fresh for this
module) with the real township node answering; its read model shows the 差评 for follow-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from central.app import create_app
from central.db.models import Booking, BookingRating
from central.services.limits import MAX_OPEN_PER_ADDRESS, MAX_OPEN_PER_PHONE
from central.services.read_model import project_district
from central.settings import Settings
from central.web.ratelimit import SlidingWindow
from core.cases import Accepted, VisitOutcome, VisitRecorded, case_from_doc
from core.errors import InvalidInput
from sync.couch import connect, couch_errors
from sync.readmodel import CaseRow
from sync.writer import EventWriter
from tests.integration import test_district_bookings as base
from tests.waiting import poll

net = base.net  # this module's own network (module scope)

PHONE = "13800138040"


@pytest.fixture(scope="module")
def client(net: base.Network) -> Iterator[TestClient]:  # type: ignore[type-arg]
    net.register(net.node_url)

    def known() -> bool:
        with couch_errors():
            return connect(net.township.url)["directory"].get(f"township_node:{base.T}") is not None

    poll(known, "the node's key at the township")
    app = create_app(Settings(database_url=net.database_url, couchdb_url=net.district.url))
    with TestClient(app) as client:
        client.get("/visit/rate")
        yield client


def _visit_done_at_the_township(net: base.Network, booking: Booking) -> None:
    database = connect(net.township.url)["township"]
    poll(lambda: database.get(booking.case_id) is not None, "the case at the township")
    with couch_errors():
        case = case_from_doc(database.get(booking.case_id))
    EventWriter(net.township_sessions, base.T).append(
        database,
        case,
        [Accepted(), VisitRecorded(visit_id=booking.visit_id, outcome=VisitOutcome.DONE)],
        author=f"staff:{base.STAFF}",
    )


def _district_state(net: base.Network, case_id: str) -> dict[str, object] | None:
    project_district(net.sessions, connect(net.district.url))
    with net.sessions() as session:
        row = session.get(CaseRow, case_id)
        return dict(row.state) if row is not None else None


def test_a_bad_rating_after_the_visit_reaches_the_township_follow_ups(
    net: base.Network,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    outcome = net.service().create(base._form(phone=PHONE), net.days[2], "am", base._key())
    booking = outcome.booking
    assert booking is not None and booking.status == "scheduled", outcome.message
    code = f"{booking.code[:4]}-{booking.code[4:]}"

    form = client.get("/visit/rate")
    assert form.status_code == 200 and "非常满意" in form.text and "非常不满意" in form.text
    early = base.post(client, "/visit/rate", code=code, phone=PHONE, level="1")
    assert early.status_code == 409 and "上门服务完成后才能评价" in early.text

    _visit_done_at_the_township(net, booking)

    def visit_done() -> bool:
        state = _district_state(net, booking.case_id)
        visits = state.get("visits") if state else None
        return isinstance(visits, list) and any(v.get("status") == "done" for v in visits)

    poll(visit_done, "the recorded visit upward")

    wrong = base.post(client, "/visit/rate", code=code, phone="13900000000", level="1")
    assert wrong.status_code == 404 and "预约码或联系电话不正确" in wrong.text
    no_level = base.post(client, "/visit/rate", code=code, phone=PHONE, level="9")
    assert no_level.status_code == 400 and "请选择满意程度" in no_level.text
    long = base.post(client, "/visit/rate", code=code, phone=PHONE, level="1", comment="差" * 201)
    assert long.status_code == 400 and "评价意见不能超过200个字" in long.text

    rated = base.post(client, "/visit/rate", code=code.lower(), phone=PHONE, level="1",
                      comment="约好上午, 下午才来")  # fmt: skip
    assert rated.status_code == 200, rated.text
    assert "感谢您的评价: 非常不满意" in rated.text and "回访" in rated.text
    again = base.post(client, "/visit/rate", code=code, phone=PHONE, level="5")
    assert again.status_code == 409 and "已经评价过" in again.text

    with net.sessions() as session:
        row = session.get(BookingRating, booking.code)
        assert row is not None and row.level == 1 and row.event_id
        event_id = row.event_id
    with couch_errors():
        event = connect(net.district.url)["district"].get(event_id)
    assert event is not None and event["payload"]["kind"] == "rated"
    assert event["payload"]["channel"] == "online" and event["payload"]["level"] == 1
    assert event["payload"]["visit_id"] == booking.visit_id
    assert event["payload"]["text"] == "约好上午, 下午才来"

    # Down to the township, whose read model opens the 差评 follow-up (its /follow-ups list).
    def follow_up_open() -> bool:
        with net.township_sessions() as session:
            row = session.get(CaseRow, booking.case_id)
            return row is not None and row.follow_up_open

    poll(follow_up_open, "the 差评 at the township", timeout=40)


# --- abuse limits ---------------------------------------------------------------------------


def _open_booking(code: str, phone: str, address: str) -> Booking:
    now = datetime.now(UTC)
    return Booking(code=code, request_key=f"key-{code}", case_id=f"case-{code}",
                   case_number=f"N-{code}", visit_id=f"v{code}", township=base.T, village=base.A,
                   item_code=base.HARDSHIP, item_name="困难党员帮扶申请", person_name="某",
                   address=address, qualification="elderly", qualification_note="",
                   phone=phone, day=now.date(), period="am", status="requested",
                   staff_name="", note="", case_hlc="", created_at=now, updated_at=now)  # fmt: skip


def test_caps_on_open_bookings_per_phone_and_per_address(
    net: base.Network,
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    phone, address = "13800138050", "示例村9组9号"
    with net.sessions() as session:
        for i in range(MAX_OPEN_PER_PHONE):
            session.add(_open_booking(f"CAPP{i:04d}", phone, f"示例村8组{i}号"))
        for i in range(MAX_OPEN_PER_ADDRESS):  # the same address, typed differently
            session.add(_open_booking(f"CAPA{i:04d}", f"1380014{i:04d}", " 示例村 ９组９号"))
        session.add(_open_booking("CAPC0001", "13800138059", "示例村7组7号"))
        session.commit()
    service = net.service()
    with pytest.raises(InvalidInput) as by_phone:
        service.check(base._form(phone=phone, address="示例村1组2号"))
    assert "这个电话号码已有 3 个未完成的上门预约" in str(by_phone.value)
    with pytest.raises(InvalidInput) as by_address:
        service.check(base._form(phone="13800138058", address=address))
    assert "这个住址已有 3 个未完成的上门预约" in str(by_address.value)
    service.check(base._form(phone="13800138059", address="示例村7组7号"))  # one open: fine

    page = base.post(client, "/visit", item_code=base.HARDSHIP, village=base.A,
                     person_name="王", id_number=base.PERSON_ID, address="示例村1组3号",
                     qualification="elderly", phone=phone)  # fmt: skip
    assert page.status_code == 400 and "这个电话号码已有 3 个未完成的上门预约" in page.text
    api = client.post("/open311/v2/requests.json",
                      data={"service_code": base.HARDSHIP, "last_name": "王", "first_name": "五",
                            "phone": "13800138058", "address_string": address,
                            "attribute[village]": base.A, "attribute[id_number]": base.PERSON_ID,
                            "attribute[qualification]": "elderly"})  # fmt: skip
    assert api.status_code == 400
    assert any("这个住址已有" in e["description"] for e in api.json())

    with net.sessions() as session:  # a cancelled or done booking no longer counts
        for row in session.scalars(select(Booking).where(Booking.phone == phone)):
            row.status = "cancelled"
        session.commit()
    service.check(base._form(phone=phone, address="示例村1组2号"))


def test_the_sliding_window() -> None:
    now = [0.0]
    window = SlidingWindow(3, 60, clock=lambda: now[0])
    assert [window.hit("a") for _ in range(3)] == [0, 0, 0]
    assert window.hit("a") == pytest.approx(60)
    assert window.hit("b") == 0  # another address has its own window
    now[0] = 30
    assert window.hit("a") == pytest.approx(30)
    now[0] = 60.5
    assert window.hit("a") == 0  # the first three hits slid out


def test_posts_over_the_rate_get_429_in_chinese(net: base.Network) -> None:
    app = create_app(Settings(database_url=net.database_url, couchdb_url=net.district.url,
                              public_post_limit=3, public_post_window=60))  # fmt: skip
    with TestClient(app) as client:
        client.get("/progress")
        for _ in range(3):
            answer = base.post(client, "/progress", case_number="x", phone="13800138000")
            assert answer.status_code == 404
        limited = base.post(client, "/progress", case_number="x", phone="13800138000")
        assert limited.status_code == 429 and "操作太频繁了" in limited.text
        assert int(limited.headers["retry-after"]) > 0
        assert "Traceback" not in limited.text
        assert client.get("/progress").status_code == 200  # reading is not limited
        api = client.post("/open311/v2/requests.json", data={"service_code": "x"})
        assert api.status_code == 429
        assert api.json() == [{"code": 429, "description": "操作太频繁了, 请过几分钟再试。"}]
        xml = client.post("/open311/v2/requests.xml", data={})
        assert xml.status_code == 429 and "<code>429</code>" in xml.text
        assert client.get("/open311/v2/requests.json").status_code == 200
        login = client.get("/login")  # the administrators' pages are not limited
        assert login.status_code == 200


def test_oversized_public_posts_are_refused_in_chinese(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    big = base.post(client, "/progress", case_number="1" * 20_000, phone="13800138000")
    assert big.status_code == 413 and "提交的内容太长了" in big.text
    api = client.post("/open311/v2/requests.json", data={"description": "长" * 20_000})
    assert api.status_code == 413 and api.json()[0]["code"] == 413
