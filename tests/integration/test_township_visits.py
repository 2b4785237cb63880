"""The township's visit calendar and door-to-door dispatch: offers, race-free slots on SQLite and
PostgreSQL, visits scheduled, moved, cancelled and recorded through the console (events in
CouchDB, the fold carrying them), published availability, route sheets, requests from kiosks.

Dates are in 2026 around the National Day break (calendar data: chinesecalendar); the console's
"today" is pinned to Monday 2026-09-28 through ``state.visit_today``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import func, select

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
from core.catalogue import CatalogueItem, HandlingLevel, Kind, Mode
from core.clock import HlcClock
from core.fold import VisitStatus, fold
from sync.couch import connect, ensure_database, save_document
from sync.filters import upward
from sync.sql import make_engine, make_sessionmaker
from tests.conftest import CouchUnderTest
from tests.sql import throwaway_database
from township import db as township_db
from township.app import catch_up, create_app
from township.models import StaffAvailability, VisitBooking
from township.settings import TownshipSettings
from township.visits import (
    DayRefused,
    NotOffered,
    Slot,
    SlotTaken,
    book_slot,
    check_visit_day,
    confirm_requested_visits,
    publish_availability,
    set_offers,
)
from township.web.cases import load_case

T = "500109110000"
A, B = "500109110201", "500109110202"
PASSWORD = "sanji-test-2026"
CSRF = "sanji_township_csrf"
_hash = PasswordHasher().hash(PASSWORD)

TODAY = date(2026, 9, 28)  # Monday
MON, TUE, WED = TODAY, date(2026, 9, 29), date(2026, 9, 30)
THU_AFTER = date(2026, 10, 8)  # the first working day after the National Day break
FRI_AFTER = date(2026, 10, 9)
MAKE_UP_SAT = date(2026, 10, 10)  # a Saturday worked to make up for the break
NATIONAL_DAY = date(2026, 10, 1)
SATURDAY = date(2026, 10, 17)
MID_AUTUMN = date(2026, 9, 25)  # a Friday off

ELDERLY = CatalogueItem(
    code="500109ZW0031", name="高龄津贴申请", kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP, modes=(Mode.DOOR_TO_DOOR, Mode.AGENCY),
    department="区民政局", legal_limit_days=20, promised_limit_days=15,
)  # fmt: skip
SHOP = CatalogueItem(
    code="500109SW0001", name="个体工商户设立登记", kind=Kind.BUSINESS,
    handling_level=HandlingLevel.TOWNSHIP, modes=(Mode.WINDOW,),
    department="区市场监管局", legal_limit_days=15, promised_limit_days=3,
)  # fmt: skip


def _account(username: str, role: str) -> dict[str, Any]:
    return {"_id": f"account:{username}", "type": "account", "username": username,
            "display_name": f"{username} 同志", "role": role, "unit": T,
            "password_hash": _hash, "disabled": False}  # fmt: skip


def _open(
    n: int, *, village: str, name: str, address: str, item: CatalogueItem = ELDERLY,
    request: tuple[date, str] | None = None,
) -> tuple[Case, list[dict[str, Any]]]:  # fmt: skip
    """A door-to-door case opened at village ``village``'s kiosk, maybe with a visit request."""
    when = datetime(2026, 9, 25, 2, n, tzinfo=UTC)
    origin = Origin(village, "k7x2m9qa")
    clock = HlcClock(origin.key, lambda: int(when.timestamp() * 1000))
    mode = Mode.DOOR_TO_DOOR if Mode.DOOR_TO_DOOR in item.modes else Mode.WINDOW
    case = new_case(
        origin=origin, counter=n * 10, hlc=clock.tick(), wall_time=when, author="jg.v201",
        village=village, township=T, item=item, catalogue_version=1, mode=mode, handling_unit=T,
        applicant=Person(name=name, id_number="500109194501010020", phone=f"1381234{n:04d}",
                         address=address),
    )  # fmt: skip
    payloads: list[Any] = [Submitted()]
    if request:
        payloads.append(VisitRequested(visit_id=f"k{n}", day=request[0], period=request[1]))
    docs = [case_to_doc(case)]
    for i, payload in enumerate(payloads, start=1):
        event = new_event(case, payload, origin=origin, counter=n * 10 + i, hlc=clock.tick(),
                          wall_time=when, author="jg.v201")  # fmt: skip
        docs.append(event_to_doc(event))
    return case, docs


D1 = _open(1, village=A, name="张大爷", address="示范村三组12号")
D2 = _open(2, village=B, name="李奶奶", address="新华村一组3号")
D3 = _open(3, village=A, name="王婆婆", address="示范村五组7号", request=(TUE, "上午"))
D4 = _open(4, village=B, name="赵爷爷", address="新华村二组9号", request=(TUE, "pm"))
D5 = _open(5, village=A, name="孙伯伯", address="示范村一组1号")
W = _open(6, village=A, name="周老板", address="示范村街上", item=SHOP)
ALL = [D1, D2, D3, D4, D5, W]


@pytest.fixture(scope="module")
def couch(couch_server: CouchUnderTest) -> Iterator[Any]:
    """The township's CouchDB: directory (three staff), settings and the cases."""
    server = connect(couch_server.url)
    for name in ("directory", "settings", "township"):
        if name in server:
            del server[name]
    directory = ensure_database(server, "directory")
    for code, name in ((T, "示范镇"), (A, "示范村"), (B, "新华村")):
        save_document(directory, {"_id": f"unit:{code}", "type": "unit", "code": code,
                                  "name": name})  # fmt: skip
    for doc in (_account("li.t", "township_head"), _account("zhang.t", "township_staff"),
                _account("wang.t", "township_staff")):  # fmt: skip
        save_document(directory, doc)
    save_document(ensure_database(server, "settings"), {
        "_id": "settings:district", "type": "settings",
        "calendar": {"exceptions": [], "announced_years": []}, "sla": {},
    })  # fmt: skip
    township = ensure_database(server, "township")
    for _, docs in ALL:
        for doc in docs:
            save_document(township, doc)
    yield server
    couch_server.check_alive()


@pytest.fixture(scope="module")
def console(couch: Any, couch_server: CouchUnderTest, tmp_path_factory: Any) -> Iterator[Any]:
    """The console on SQLite, caught up by hand (no background loop), "today" pinned."""
    url = f"sqlite:///{tmp_path_factory.mktemp('visits') / 'township.sqlite'}"
    township_db.migrate(url)
    settings = TownshipSettings(code=T, couchdb_url=couch_server.url, database_url=url,
                                project_every=0)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        client.app.state.visit_today = lambda: TODAY
        catch_up(client.app.state)
        yield client


def _post(client: TestClient[Litestar], path: str, data: dict[str, Any]) -> Any:
    client.get("/login")
    return client.post(path, data={**data, "_csrf_token": client.cookies[CSRF]},
                       follow_redirects=False)  # fmt: skip


def _login(client: TestClient[Litestar], username: str) -> None:
    client.cookies.clear()
    answer = _post(client, "/login", {"username": username, "password": PASSWORD, "next": "/"})
    assert answer.status_code in (302, 303), answer.text


def _events(couch: Any, case: Case, kind: str) -> list[dict[str, Any]]:
    township = couch["township"]
    prefix = "case_event:" + case.id[5:]
    docs = [township[i] for i in township if i.startswith(prefix)]
    return sorted((d for d in docs if d["kind"] == kind), key=lambda d: d["counter"])


def _folded(couch: Any, case: Case) -> Any:
    """The case folded from its CouchDB documents, as every replica (the kiosk too) folds it."""
    township = couch["township"]
    prefix = "case_event:" + case.id[5:]
    events = [dict(township[i]) for i in township if i.startswith(prefix)]
    return fold(dict(township[case.id]), events, WorkCalendar(), TODAY)


def _availability(couch: Any, day: date) -> dict[str, Any]:
    doc = couch["township"].get(f"visit_availability:{T}:{day.isoformat()}")
    assert doc is not None, day
    return {p: (v["capacity"], v["free"]) for p, v in doc["periods"].items()}


def _offer(client: TestClient[Litestar], *slots: Slot) -> None:
    """Offer ``slots`` (on top of what their days already offer), as the calendar would."""
    state = client.app.state
    names = {"zhang.t": "zhang.t 同志", "wang.t": "wang.t 同志", "li.t": "li.t 同志"}
    for day in {s.day for s in slots}:
        with state.sessions() as session:
            have = {
                Slot(b.day, b.period, b.staff)
                for b in session.execute(
                    select(VisitBooking).where(VisitBooking.day == day)
                ).scalars()
            }
            have |= {
                Slot(r.day, r.period, r.staff)
                for r in session.execute(
                    select(StaffAvailability).where(StaffAvailability.day == day)
                ).scalars()
            }
        wanted = have | {s for s in slots if s.day == day}
        set_offers(state.sessions, WorkCalendar(), TODAY, names, [day], wanted)
        publish_availability(state.sessions, client.app.state.couch()["township"], T, [day])


def _flash(page: str) -> list[str]:
    return re.findall(r'class="flash (?:ok|error)" role="status">([^<]*)<', page)


# --- slots are taken by exactly one ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_one_slot_many_takers_exactly_one_wins(kind: str, tmp_path: Path) -> None:
    with throwaway_database(kind, tmp_path) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            slot = Slot(MON, "am", "zhang.t")
            set_offers(sessions, WorkCalendar(), TODAY, {"zhang.t": "张"}, [MON], {slot})
            takers = 20
            start = threading.Barrier(takers)
            won: list[int] = []
            lost: list[int] = []
            failed: list[BaseException] = []

            def take(i: int) -> None:
                start.wait()
                try:
                    book_slot(sessions, slot, f"case:{i}", f"v{i}")
                    won.append(i)
                except SlotTaken:
                    lost.append(i)
                except BaseException as exc:  # pragma: no cover - the failure is the point
                    failed.append(exc)

            threads = [threading.Thread(target=take, args=(i,)) for i in range(takers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not failed, failed
            assert len(won) == 1 and len(lost) == takers - 1
            with sessions() as session:
                rows = session.execute(select(VisitBooking)).scalars().all()
                assert [(r.case_id, r.staff, r.day, r.period) for r in rows] == [
                    (f"case:{won[0]}", "zhang.t", MON, "am")
                ]
            with pytest.raises(NotOffered):
                book_slot(sessions, Slot(MON, "pm", "zhang.t"), "case:x", "vx")
            # A booked offer is not withdrawn; the free one is.
            changed, kept = set_offers(sessions, WorkCalendar(), TODAY, {"zhang.t": "张"},
                                       [MON], set())  # fmt: skip
            assert kept == [slot]
        finally:
            engine.dispose()


def test_only_working_days_from_today() -> None:
    cal = WorkCalendar()
    for day in (MON, THU_AFTER, MAKE_UP_SAT):
        check_visit_day(cal, day, TODAY)
    for day in (NATIONAL_DAY, SATURDAY, date(2026, 10, 7)):
        with pytest.raises(DayRefused, match="不是工作日"):
            check_visit_day(cal, day, TODAY)
    with pytest.raises(DayRefused, match="已过"):
        check_visit_day(cal, MID_AUTUMN, TODAY)


# --- the console ------------------------------------------------------------------------------


def test_staff_offer_slots_and_the_township_publishes_free_capacity(
    console: TestClient[Litestar], couch: Any
) -> None:
    _login(console, "zhang.t")
    page = console.get("/visits").text
    assert 'id="visit-calendar"' in page
    shown = re.findall(r'<th colspan="2" class="visit-day">(\d{4}-\d\d-\d\d)', page)
    assert shown == [d.isoformat() for d in (MON, TUE, WED, THU_AFTER, FRI_AFTER)]
    # A staff member edits only their own row: wang.t's slot is ignored.
    offers = [f"{THU_AFTER}|am|zhang.t", f"{THU_AFTER}|pm|zhang.t", f"{THU_AFTER}|am|wang.t"]
    done = _post(console, "/visits/availability", {"start": MON.isoformat(), "offer": offers})
    assert done.status_code in (302, 303)
    assert _availability(couch, THU_AFTER) == {"am": (1, 1), "pm": (1, 1)}
    _login(console, "li.t")  # the head of centre edits everyone's
    offers = [f"{THU_AFTER}|am|zhang.t", f"{THU_AFTER}|am|wang.t", f"{THU_AFTER}|pm|wang.t"]
    _post(console, "/visits/availability", {"start": MON.isoformat(), "offer": offers})
    assert _availability(couch, THU_AFTER) == {"am": (2, 2), "pm": (1, 1)}
    doc = couch["township"][f"visit_availability:{T}:{THU_AFTER.isoformat()}"]
    assert doc["type"] == "visit_availability" and doc["township"] == T
    assert "zhang" not in str(dict(doc)) and "wang" not in str(dict(doc))  # no names
    assert upward(dict(doc), {"township": T})  # it travels up to the district
    page = console.get("/visits").text
    assert re.search(rf'value="{THU_AFTER}\|pm\|wang.t" checked', page)
    assert not re.search(rf'value="{THU_AFTER}\|pm\|zhang.t" checked', page)


def test_schedule_move_record_and_cancel_through_the_console(
    console: TestClient[Litestar], couch: Any
) -> None:
    case, _ = D1
    n = case.case_number
    _offer(console, Slot(MON, "am", "zhang.t"), Slot(WED, "pm", "wang.t"),
           Slot(FRI_AFTER, "am", "zhang.t"), Slot(MAKE_UP_SAT, "am", "zhang.t"))  # fmt: skip
    _login(console, "zhang.t")
    form = console.get(f"/cases/{n}/visit").text
    assert f'value="{MON}|am|zhang.t"' in form and f'value="{WED}|pm|wang.t"' in form
    assert _availability(couch, MON)["am"] == (1, 1)

    answer = _post(console, f"/cases/{n}/visit", {"slot": f"{MON}|am|zhang.t"})
    assert answer.headers["location"] == f"/cases/{n}/visit"
    [scheduled] = _events(couch, case, "visit_scheduled")
    payload = scheduled["payload"]
    assert (payload["day"], payload["period"], payload["staff"]) == (MON.isoformat(), "am",
                                                                     "zhang.t")  # fmt: skip
    assert payload["staff_name"] == "zhang.t 同志" and scheduled["author"] == "zhang.t"
    assert _availability(couch, MON)["am"] == (1, 0)
    visit_id = payload["visit_id"]

    # The same slot for another case: refused, nothing written.
    other = D2[0]
    refused = _post(console, f"/cases/{other.case_number}/visit", {"slot": f"{MON}|am|zhang.t"})
    assert "刚被别人约走" in " ".join(_flash(console.get(refused.headers["location"]).text))
    assert _events(couch, other, "visit_scheduled") == []
    # Not a working day: refused before any slot is looked at.
    for day in (NATIONAL_DAY, SATURDAY):
        _post(console, f"/cases/{n}/visit", {"slot": f"{day}|am|zhang.t", "visit_id": visit_id})
        assert any("不是工作日" in m for m in _flash(console.get(f"/cases/{n}/visit").text))
    # A window case gets no new visit.
    _post(console, f"/cases/{W[0].case_number}/visit", {"slot": f"{WED}|pm|wang.t"})
    assert _events(couch, W[0], "visit_scheduled") == []

    # Move: a second visit_scheduled of the same visit; the old slot is free again.
    _post(console, f"/cases/{n}/visit", {"slot": f"{WED}|pm|wang.t", "visit_id": visit_id})
    moved = _events(couch, case, "visit_scheduled")
    assert len(moved) == 2 and moved[1]["payload"]["visit_id"] == visit_id
    assert _availability(couch, MON)["am"] == (1, 1) and _availability(couch, WED)["pm"] == (1, 0)

    # Absent: recorded, then rescheduled (on the make-up Saturday), then done.
    _post(console, f"/cases/{n}/visit/record", {"visit_id": visit_id, "outcome": "absent"})
    [absent] = _events(couch, case, "visit_recorded")
    assert absent["payload"]["outcome"] == "absent"
    _post(console, f"/cases/{n}/visit", {"slot": f"{MAKE_UP_SAT}|am|zhang.t",
                                         "visit_id": visit_id})  # fmt: skip
    assert len(_events(couch, case, "visit_scheduled")) == 3
    assert _availability(couch, WED)["pm"] == (1, 0)  # the visit that happened keeps its slot
    _post(console, f"/cases/{n}/visit/record", {"visit_id": visit_id, "outcome": "done"})
    assert [e["payload"]["outcome"] for e in _events(couch, case, "visit_recorded")] == [
        "absent", "done"
    ]  # fmt: skip
    _post(console, f"/cases/{n}/visit/cancel", {"visit_id": visit_id})
    assert _events(couch, case, "visit_cancelled") == []  # a visit that took place stays

    catch_up(console.app.state)
    _, _, state = load_case(console.app.state, T, n)
    [visit] = state.visits
    assert (visit.status, visit.day, visit.period, visit.staff) == (
        VisitStatus.DONE, MAKE_UP_SAT, "am", "zhang.t")  # fmt: skip
    assert _folded(couch, case).visits == state.visits  # what the kiosk folds, too
    page = console.get(f"/cases/{n}").text
    assert 'id="visits"' in page and "已上门" in page

    # Cancel a scheduled visit: visit_cancelled, the slot is free at once.
    c5 = D5[0]
    _post(console, f"/cases/{c5.case_number}/visit", {"slot": f"{FRI_AFTER}|am|zhang.t"})
    assert _availability(couch, FRI_AFTER)["am"] == (1, 0)
    vid = _events(couch, c5, "visit_scheduled")[0]["payload"]["visit_id"]
    _post(console, f"/cases/{c5.case_number}/visit/cancel", {"visit_id": vid, "reason": "已住院"})
    [cancelled] = _events(couch, c5, "visit_cancelled")
    assert cancelled["payload"] == {"visit_id": vid, "reason": "已住院"} | {
        k: v for k, v in cancelled["payload"].items() if k not in ("visit_id", "reason")
    }
    assert _availability(couch, FRI_AFTER)["am"] == (1, 1)
    assert _folded(couch, c5).visits[0].status is VisitStatus.CANCELLED


def test_route_sheet_groups_the_days_visits_by_village(
    console: TestClient[Litestar], couch: Any
) -> None:
    _offer(console, Slot(THU_AFTER, "am", "zhang.t"), Slot(THU_AFTER, "pm", "zhang.t"),
           Slot(THU_AFTER, "pm", "wang.t"))  # fmt: skip
    _login(console, "zhang.t")
    _post(console, f"/cases/{D2[0].case_number}/visit", {"slot": f"{THU_AFTER}|am|zhang.t"})
    _post(console, f"/cases/{D5[0].case_number}/visit", {"slot": f"{THU_AFTER}|pm|zhang.t"})
    sheet = console.get("/visits/route", params={"staff": "zhang.t", "day": str(THU_AFTER)}).text
    villages = re.findall(r'class="route-village" data-village="(\d*)"', sheet)
    assert villages == [A, B]
    stops = re.findall(r'class="route-stop" data-case="([^"]+)"', sheet)
    assert stops == [D5[0].case_number, D2[0].case_number]
    assert "示范村一组1号" in sheet and "新华村一组3号" in sheet and "李奶奶" in sheet
    assert "zhang.t 同志" in sheet
    empty = console.get("/visits/route", params={"staff": "wang.t", "day": str(THU_AFTER)}).text
    assert 'id="no-stops"' in empty
    assert console.get("/visits/route", params={"staff": "nobody"}).status_code == 404


def test_requests_from_kiosks_are_confirmed_when_a_slot_is_free(
    console: TestClient[Litestar], couch: Any
) -> None:
    state = console.app.state
    _offer(console, Slot(TUE, "am", "wang.t"), Slot(TUE, "am", "zhang.t"))  # none in the pm
    confirmed = confirm_requested_visits(
        state.sessions, state.couch(), "township", state.writer, today=TODAY,
        calendar=WorkCalendar(),
    )  # fmt: skip
    assert confirmed == 1
    [auto] = _events(couch, D3[0], "visit_scheduled")
    assert auto["author"] == "node" and auto["payload"]["visit_id"] == "k3"
    assert (auto["payload"]["day"], auto["payload"]["period"]) == (TUE.isoformat(), "am")
    assert auto["payload"]["staff"] == "wang.t"  # fewest visits that day, then by name
    assert _events(couch, D4[0], "visit_scheduled") == []
    assert _availability(couch, TUE)["am"] == (2, 1)
    # Again: nothing more to do (the first is confirmed, the second still has no free slot).
    again = confirm_requested_visits(state.sessions, state.couch(), "township", state.writer,
                                     today=TODAY, calendar=WorkCalendar())  # fmt: skip
    assert again == 0 and len(_events(couch, D3[0], "visit_scheduled")) == 1
    assert _folded(couch, D3[0]).visits[0].status is VisitStatus.SCHEDULED
    _login(console, "zhang.t")
    page = console.get("/visits").text
    waiting = re.findall(r'data-request="([^"]+)"', page)
    assert waiting == [D4[0].case_number] and "已无空闲的上门人员, 请另选时段" in page
    catch_up(state)
    # Staff pick another period for it: the request becomes a scheduled visit.
    _post(console, f"/cases/{D4[0].case_number}/visit",
          {"slot": f"{TUE}|am|zhang.t", "visit_id": "k4"})  # fmt: skip
    [picked] = _events(couch, D4[0], "visit_scheduled")
    assert picked["payload"]["visit_id"] == "k4" and picked["author"] == "zhang.t"
    assert 'data-request="' not in console.get("/visits").text
    assert _availability(couch, TUE)["am"] == (2, 0)


def test_the_calendar_shows_bookings(console: TestClient[Litestar]) -> None:
    _login(console, "li.t")
    page = console.get("/visits", params={"start": str(TUE)}).text
    cell = re.search(rf'data-slot="{TUE}\|am\|wang.t">(.*?)</td>', page, re.S)
    assert cell and D3[0].case_number[-4:] in cell[1] and "示范村" in cell[1]
    with console.app.state.sessions() as session:
        assert session.scalar(select(func.count()).select_from(VisitBooking)) >= 5
