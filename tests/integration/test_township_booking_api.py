"""The township node's booking API (issue 6 contract): the district's key, booking a citizen's
home visit into a free staff slot, idempotent retries, the last slot of a period going to
exactly one of 50 simultaneous requests (SQLite through the API, PostgreSQL through the
service), moving and cancelling, and the requests refused.

A real pouchdb-server holds the township's databases; the district's documents are built with
``core.cases`` as the district writes them (origin: the district server) and saved first into a
scratch ``district`` database, so they carry real revisions, as the district sends them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from core.calendar import WorkCalendar
from core.cases import (
    Case,
    Origin,
    Person,
    Submitted,
    VisitRequested,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CatalogueItem, Mode
from core.clock import HlcClock
from sync.couch import connect, ensure_database, save_document
from sync.sql import make_engine, make_sessionmaker
from sync.writer import EventWriter
from tests.conftest import CouchUnderTest
from tests.integration.test_township_visits import (
    ELDERLY,
    FRI_AFTER,
    MAKE_UP_SAT,
    MID_AUTUMN,
    MON,
    NATIONAL_DAY,
    SATURDAY,
    SHOP,
    THU_AFTER,
    TODAY,
    TUE,
    WED,
    A,
    T,
    _account,
    _availability,
    _events,
    _offer,
)
from tests.sql import throwaway_database
from township import db as township_db
from township.app import catch_up, create_app
from township.bookings import SLOT_TAKEN, BookingDesk
from township.errors import PeriodFull
from township.models import VisitBooking
from township.settings import TownshipSettings
from township.visits import Slot, publish_availability, set_offers

DISTRICT = "500109000000"
ORIGIN = Origin(DISTRICT, "d5tr1ct0")
OTHER_T, OTHER_V = "500109001000", "500109001201"
KEY = "district-key-for-tests-0123456789abcdef"
PATH = "/api/v1/visit-bookings"
AUTH = {"Authorization": f"Bearer {KEY}"}

_counter = iter(range(1, 1_000_000, 10))


def _district_booking(
    couch: Any, day: date, period: str, *, item: CatalogueItem = ELDERLY,
    township: str = T, village: str = A, request: tuple[date, str] | None = None,
) -> tuple[Case, dict[str, Any]]:  # fmt: skip
    """A citizen's booking as the district writes it (case, submitted, visit_requested, saved
    in its `district` database) and the body it posts."""
    n = next(_counter)
    when = datetime(2026, 9, 27, 8, 0, tzinfo=UTC)
    clock = HlcClock(ORIGIN.key, lambda: int(when.timestamp() * 1000) + n)
    mode = Mode.DOOR_TO_DOOR if Mode.DOOR_TO_DOOR in item.modes else Mode.WINDOW
    case = new_case(
        origin=ORIGIN, counter=n, hlc=clock.tick(), wall_time=when, author="citizen",
        village=village, township=township, item=item, catalogue_version=1, mode=mode,
        handling_unit=township, mode_reason="高龄 (85 岁), 行动不便",
        applicant=Person(name=f"老人{n}", id_number="500109194501010020",
                         phone=f"139{n:08d}", address="示范村三组12号"),
    )  # fmt: skip
    visit_id = f"b{n}"
    asked = request or (day, period)
    payloads: list[Any] = [Submitted(), VisitRequested(visit_id=visit_id, day=asked[0],
                                                       period=asked[1])]  # fmt: skip
    events = [
        new_event(
            case,
            p,
            origin=ORIGIN,
            counter=n + i,
            hlc=clock.tick(),
            wall_time=when,
            author="citizen",
        )  # fmt: skip
        for i, p in enumerate(payloads, start=1)
    ]
    docs = [case_to_doc(case), *(event_to_doc(e) for e in events)]
    district = couch["district"]
    for doc in docs:
        save_document(district, doc)
    stored = [dict(district[d["_id"]]) for d in docs]
    body = {"case": stored[0], "events": stored[1:], "visit_id": visit_id,
            "day": day.isoformat(), "period": period}  # fmt: skip
    return case, body


@pytest.fixture(scope="module")
def couch(couch_server: CouchUnderTest) -> Iterator[Any]:
    """The township's CouchDB (directory with staff and this node's key hash, settings, cases)
    and a scratch `district` database the district's documents are written to first."""
    server = connect(couch_server.url)
    for name in ("directory", "settings", "township", "district", "township_pg"):
        if name in server:
            del server[name]
    directory = ensure_database(server, "directory")
    for doc in (_account("li.t", "township_head"), _account("zhang.t", "township_staff"),
                _account("wang.t", "township_staff")):  # fmt: skip
        save_document(directory, doc)
    save_document(directory, {
        "_id": f"township_node:{T}", "type": "township_node", "code": T, "township": T,
        "url": "http://127.0.0.1:8101/", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
        "updated_at": "2026-09-01T00:00:00+00:00",
    })  # fmt: skip
    save_document(ensure_database(server, "settings"), {
        "_id": "settings:district", "type": "settings",
        "calendar": {"exceptions": [], "announced_years": []}, "sla": {},
    })  # fmt: skip
    for name in ("township", "district", "township_pg"):
        ensure_database(server, name)
    yield server
    couch_server.check_alive()


@pytest.fixture(scope="module")
def node(couch: Any, couch_server: CouchUnderTest, tmp_path_factory: Any) -> Iterator[Any]:
    """The township node on SQLite, caught up by hand (no background loop), "today" pinned."""
    url = f"sqlite:///{tmp_path_factory.mktemp('bookings') / 'township.sqlite'}"
    township_db.migrate(url)
    settings = TownshipSettings(code=T, couchdb_url=couch_server.url, database_url=url,
                                project_every=0)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        client.app.state.visit_today = lambda: TODAY
        catch_up(client.app.state)
        yield client


def _held(client: TestClient[Litestar], case: Case) -> list[tuple[date, str, str]]:
    with client.app.state.sessions() as session:
        rows = session.execute(
            select(VisitBooking).where(VisitBooking.case_id == case.id)
        ).scalars()
        return sorted((r.day, r.period, r.staff) for r in rows)


def _move(client: TestClient[Litestar], visit: str, case: Case, day: date, period: str) -> Any:
    body = {"case_id": case.id, "day": day.isoformat(), "period": period}
    return client.post(f"{PATH}/{visit}/move", headers=AUTH, json=body)


# --- trust --------------------------------------------------------------------------------------


def test_calls_without_the_districts_key_are_refused(
    node: TestClient[Litestar], couch: Any
) -> None:
    _, body = _district_booking(couch, MON, "am")
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {KEY}"},
                    {"Authorization": "Bearer "}):  # fmt: skip
        answer = node.post(PATH, json=body, headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"] == "unauthorized" and answer.json()["message"]
        assert answer.headers["www-authenticate"] == "Bearer"
    for path in (f"{PATH}/x/move", f"{PATH}/x/cancel"):
        assert node.post(path, json={"case_id": "x"}).status_code == 401
    assert body["case"]["_id"] not in couch["township"]  # nothing stored


# --- booking --------------------------------------------------------------------------------------


def test_booking_a_free_period_schedules_the_visit(node: TestClient[Litestar], couch: Any) -> None:
    _offer(node, Slot(WED, "am", "zhang.t"), Slot(WED, "am", "wang.t"))
    assert _availability(couch, WED)["am"] == (2, 2)
    case, body = _district_booking(couch, WED, "am")

    answer = node.post(PATH, json=body, headers=AUTH)
    assert answer.status_code == 201, answer.text
    booked = answer.json()
    assert booked == {"status": "scheduled", "visit_id": body["visit_id"], "day": WED.isoformat(),
                      "period": "am", "staff_name": booked["staff_name"],
                      "case_number": case.case_number}  # fmt: skip
    assert booked["staff_name"] in ("zhang.t 同志", "wang.t 同志")
    # The district's documents are stored with their own revisions.
    township = couch["township"]
    for doc in (body["case"], *body["events"]):
        assert township[doc["_id"]]["_rev"] == doc["_rev"]
    # visit_scheduled written by the node, the slot taken, one less free published.
    [scheduled] = _events(couch, case, "visit_scheduled")
    assert scheduled["origin"]["unit"] == T and scheduled["author"] == "node"
    assert scheduled["payload"]["visit_id"] == body["visit_id"]
    [(day, period, staff)] = _held(node, case)
    assert (day, period) == (WED, "am") and booked["staff_name"] == f"{staff} 同志"
    assert _availability(couch, WED)["am"] == (2, 1)

    again = node.post(PATH, json=body, headers=AUTH)
    assert again.status_code == 200 and again.json() == booked
    assert len(_events(couch, case, "visit_scheduled")) == 1
    # The catch-up finds nothing left to confirm.
    catch_up(node.app.state)
    assert len(_events(couch, case, "visit_scheduled")) == 1 and len(_held(node, case)) == 1


def test_the_last_slot_goes_to_exactly_one_of_fifty(node: TestClient[Litestar], couch: Any) -> None:
    _offer(node, Slot(THU_AFTER, "pm", "zhang.t"))
    bookings = [_district_booking(couch, THU_AFTER, "pm") for _ in range(50)]
    start = threading.Barrier(len(bookings))
    answers: list[Any] = [None] * len(bookings)

    def book(i: int) -> None:
        start.wait()
        answers[i] = node.post(PATH, json=bookings[i][1], headers=AUTH)

    threads = [threading.Thread(target=book, args=(i,)) for i in range(len(bookings))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 49, [a.text for a in answers if a.status_code >= 500]
    for a in answers:
        if a.status_code == 409:
            assert a.json() == {"error": "slot_taken", "message": SLOT_TAKEN}
    [winner] = [
        case for (case, _), a in zip(bookings, answers, strict=True) if a.status_code == 201
    ]
    with node.app.state.sessions() as session:
        rows = (
            session.execute(
                select(VisitBooking).where(
                    VisitBooking.day == THU_AFTER, VisitBooking.period == "pm"
                )
            )
            .scalars()
            .all()
        )
    assert [(r.case_id, r.staff) for r in rows] == [(winner.id, "zhang.t")]
    assert sum(len(_events(couch, c, "visit_scheduled")) for c, _ in bookings) == 1
    assert _availability(couch, THU_AFTER)["pm"] == (1, 0)
    # The losers keep their requests, listed for staff at the next catch-up.
    catch_up(node.app.state)
    assert sum(len(_events(couch, c, "visit_scheduled")) for c, _ in bookings) == 1


def test_move_takes_the_new_slot_before_freeing_the_old_and_cancel_frees_at_once(
    node: TestClient[Litestar], couch: Any
) -> None:
    _offer(node, Slot(FRI_AFTER, "am", "zhang.t"), Slot(FRI_AFTER, "pm", "wang.t"))
    case, body = _district_booking(couch, FRI_AFTER, "am")
    visit = body["visit_id"]
    assert node.post(PATH, json=body, headers=AUTH).status_code == 201
    assert _availability(couch, FRI_AFTER) == {"am": (1, 0), "pm": (1, 1)}

    moved = _move(node, visit, case, FRI_AFTER, "pm")
    assert moved.status_code == 201, moved.text
    assert moved.json()["period"] == "pm" and moved.json()["staff_name"] == "wang.t 同志"
    assert _held(node, case) == [(FRI_AFTER, "pm", "wang.t")]
    assert _availability(couch, FRI_AFTER) == {"am": (1, 1), "pm": (1, 0)}
    assert [e["payload"]["period"] for e in _events(couch, case, "visit_scheduled")] == ["am", "pm"]
    again = _move(node, visit, case, FRI_AFTER, "pm")
    assert again.status_code == 200 and again.json() == moved.json()

    # A full period: 409, the visit keeps the slot it has.
    other, other_body = _district_booking(couch, FRI_AFTER, "am")
    assert node.post(PATH, json=other_body, headers=AUTH).status_code == 201
    full = _move(node, visit, case, FRI_AFTER, "am")
    assert full.status_code == 409 and full.json()["error"] == "slot_taken"
    assert _held(node, case) == [(FRI_AFTER, "pm", "wang.t")]
    assert len(_events(couch, case, "visit_scheduled")) == 2

    cancelled = node.post(f"{PATH}/{visit}/cancel", headers=AUTH,
                          json={"case_id": case.id, "reason": "家属接去城里住"})  # fmt: skip
    assert cancelled.status_code == 200 and cancelled.json() == {"status": "cancelled"}
    [event] = _events(couch, case, "visit_cancelled")
    assert event["payload"]["reason"] == "家属接去城里住" and event["origin"]["unit"] == T
    assert _held(node, case) == []
    assert _availability(couch, FRI_AFTER) == {"am": (1, 0), "pm": (1, 1)}
    retry = node.post(f"{PATH}/{visit}/cancel", headers=AUTH, json={"case_id": case.id})
    assert retry.status_code == 200 and len(_events(couch, case, "visit_cancelled")) == 1
    # A cancelled visit is not moved again.
    late = _move(node, visit, case, FRI_AFTER, "pm")
    assert late.status_code == 400 and late.json()["error"] == "invalid"


def test_bad_requests_are_refused_and_change_nothing(
    node: TestClient[Litestar], couch: Any
) -> None:
    _offer(node, Slot(TUE, "am", "zhang.t"))

    def refused(body: Any, path: str = PATH) -> str:
        if isinstance(body, bytes):
            headers = {**AUTH, "Content-Type": "application/json"}
            answer = node.post(path, headers=headers, content=body)
        else:
            answer = node.post(path, headers=AUTH, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"] == "invalid"
        message: str = answer.json()["message"]
        assert message
        return message

    refused(b"{not json")
    refused([1, 2])
    _, good = _district_booking(couch, TUE, "am")
    refused({k: v for k, v in good.items() if k != "visit_id"})
    refused({**good, "period": "evening"})
    refused({**good, "day": "2026-02-30"})
    refused({**good, "visit_id": "nope"})
    refused({**good, "case": {**good["case"], "_rev": None}})
    refused({**good, "events": [{**good["events"][0], "kind": "completed"}]})
    for day, why in ((NATIONAL_DAY, "不是工作日"), (SATURDAY, "不是工作日"), (MID_AUTUMN, "已过")):
        _, body = _district_booking(couch, day, "am")
        assert why in refused(body)
        assert body["case"]["_id"] not in couch["township"]  # nothing stored
    _, mismatch = _district_booking(couch, TUE, "am", request=(TUE, "pm"))
    assert "不一致" in refused(mismatch)
    _, elsewhere = _district_booking(couch, TUE, "am", township=OTHER_T, village=OTHER_V)
    assert "不属于本镇街" in refused(elsewhere)
    _, window = _district_booking(couch, TUE, "am", item=SHOP)
    assert "不是上门办" in refused(window)
    refused({"case_id": "case:nope", "day": TUE.isoformat(), "period": "am"}, f"{PATH}/x/move")
    refused({"case_id": elsewhere["case"]["_id"]}, f"{PATH}/x/cancel")
    for body in (mismatch, elsewhere, window):
        assert body["case"]["_id"] not in couch["township"]
    assert _availability(couch, TUE)["am"] == (1, 1)
    # The good one still books.
    assert node.post(PATH, json=good, headers=AUTH).status_code == 201


# --- the same race on PostgreSQL, through the service ------------------------------------------


def test_the_last_slot_goes_to_exactly_one_on_postgresql(couch: Any, tmp_path: Path) -> None:
    with throwaway_database("postgresql", tmp_path) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            slot = Slot(MAKE_UP_SAT, "am", "zhang.t")
            set_offers(sessions, WorkCalendar(), TODAY, {"zhang.t": "张"}, [MAKE_UP_SAT], {slot})
            desk = BookingDesk(sessions, couch, T, "township_pg", EventWriter(sessions, T),
                               WorkCalendar(), TODAY)  # fmt: skip
            publish_availability(sessions, couch["township_pg"], T, [MAKE_UP_SAT])
            bookings = [_district_booking(couch, MAKE_UP_SAT, "am") for _ in range(50)]
            start = threading.Barrier(len(bookings))
            won: list[str] = []
            lost: list[str] = []
            failed: list[BaseException] = []

            def book(case: Case, body: dict[str, Any]) -> None:
                start.wait()
                try:
                    desk.book(body["case"], body["events"], body["visit_id"], MAKE_UP_SAT, "am")
                    won.append(case.id)
                except PeriodFull as exc:
                    assert str(exc) == SLOT_TAKEN
                    lost.append(case.id)
                except BaseException as exc:  # pragma: no cover - the failure is the point
                    failed.append(exc)

            threads = [threading.Thread(target=book, args=b) for b in bookings]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not failed, failed
            assert len(won) == 1 and len(lost) == 49
            with sessions() as session:
                rows = session.execute(select(VisitBooking)).scalars().all()
            assert [(r.case_id, r.day, r.period) for r in rows] == [(won[0], MAKE_UP_SAT, "am")]
            doc = couch["township_pg"][f"visit_availability:{T}:{MAKE_UP_SAT.isoformat()}"]
            assert doc["periods"]["am"] == {"label": "上午", "capacity": 1, "free": 0}
        finally:
            engine.dispose()
