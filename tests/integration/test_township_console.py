"""The township console: staff log in with accounts from the replicated directory and work an
inbox read from the SQL projection of the township database (filters, search, colours, paging,
and a marker that moves when a case changes).

A real pouchdb-server holds the township's `directory`, `settings` and `township` databases;
the console runs with its real projection loop against SQLite, and the inbox queries also run
against PostgreSQL.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.cases import (
    Accepted,
    Case,
    Organisation,
    Origin,
    Person,
    Received,
    Resumed,
    Submitted,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CatalogueItem, HandlingLevel, Kind, Mode
from core.clock import HlcClock
from core.sla import Colour
from sync.couch import connect, ensure_database, save_document
from sync.sql import make_engine, make_sessionmaker
from sync.writer import EventWriter
from tests.conftest import CouchUnderTest
from tests.sql import throwaway_database
from tests.waiting import poll
from township import db as township_db
from township.app import create_app
from township.inbox import PAGE_SIZE, UNASSIGNED, InboxFilter, inbox_page, latest_change
from township.read_model import project_township
from township.settings import TownshipSettings
from township.supervision import supervise

T = "500109110000"
OTHER_T = "500109001000"
A, B = "500109110201", "500109110202"
PASSWORD = "sanji-test-2026"
CSRF = "sanji_township_csrf"
_hash = PasswordHasher().hash(PASSWORD)

LOW_INCOME = CatalogueItem(
    code="500109ZW0020", name="最低生活保障申请", kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP, modes=(Mode.AGENCY, Mode.WINDOW),
    department="区民政局", legal_limit_days=30, promised_limit_days=20,
)  # fmt: skip
SHOP = CatalogueItem(
    code="500109SW0001", name="个体工商户设立登记", kind=Kind.BUSINESS,
    handling_level=HandlingLevel.TOWNSHIP, modes=(Mode.VIDEO, Mode.WINDOW),
    department="区市场监管局", legal_limit_days=15, promised_limit_days=3,
)  # fmt: skip


def _account(username: str, role: str, unit: str, **extra: Any) -> dict[str, Any]:
    return {"_id": f"account:{username}", "type": "account", "username": username,
            "display_name": f"{username} 同志", "role": role, "unit": unit,
            "password_hash": _hash, "disabled": False, **extra}  # fmt: skip


@dataclass
class Opened:
    """A case written into the township database, as a kiosk or the counter would."""

    case: Case
    docs: list[dict[str, Any]]


def _open(
    n: int, item: CatalogueItem, *, village: str | None, mode: Mode, when: datetime,
    accepted: bool = False, name: str = "", phone: str = "13800000000", org: bool = False,
) -> Opened:  # fmt: skip
    unit = village or T
    origin = Origin(unit, "k7x2m9qa")
    clock = HlcClock(origin.key, lambda: int(when.timestamp() * 1000))
    applicant: Any = (
        Organisation(name=name or f"商户{n}", credit_code="92500109MA5U000128",
                     contact_name="王五", contact_phone=phone)
        if org else Person(name=name or f"村民{n}", id_number="500109194501010020", phone=phone)
    )  # fmt: skip
    case = new_case(
        origin=origin, counter=n * 10, hlc=clock.tick(), wall_time=when, author="jg.v201",
        village=village, township=T, item=item, catalogue_version=1, applicant=applicant,
        mode=mode, handling_unit=T,
    )  # fmt: skip
    submitted = new_event(case, Submitted(), origin=origin, counter=n * 10 + 1,
                          hlc=clock.tick(), wall_time=when, author="jg.v201")  # fmt: skip
    docs = [case_to_doc(case), event_to_doc(submitted)]
    if accepted:
        staff = Origin(T, "tw01abcd")
        stamp = HlcClock(staff.key, lambda: int(when.timestamp() * 1000) + 1000)
        for i, payload in enumerate((Received(receiver=T, received_at=when), Accepted())):
            event = new_event(case, payload, origin=staff, counter=n * 10 + i + 1,
                              hlc=stamp.tick(), wall_time=when, author="zhang.t")  # fmt: skip
            docs.append(event_to_doc(event))
    return Opened(case, docs)


NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=40)
CASES = [
    _open(1, LOW_INCOME, village=A, mode=Mode.AGENCY, when=NOW, name="张三", phone="13812345678"),
    _open(2, SHOP, village=B, mode=Mode.WINDOW, when=NOW, org=True, name="示范村小卖部"),
    _open(3, LOW_INCOME, village=A, mode=Mode.AGENCY, when=NOW, accepted=True, name="李四"),
    _open(4, SHOP, village=None, mode=Mode.WINDOW, when=LONG_AGO, accepted=True, name="王五"),
]


@pytest.fixture(scope="module")
def couch(couch_server: CouchUnderTest) -> Iterator[Any]:
    """The township's CouchDB with its directory, settings and the four cases."""
    server = connect(couch_server.url)
    for name in ("directory", "settings", "township"):
        if name in server:
            del server[name]
    directory = ensure_database(server, "directory")
    for code, name in ((T, "示范镇"), (A, "示范村"), (B, "新华村")):
        save_document(directory, {"_id": f"unit:{code}", "type": "unit", "code": code,
                                  "name": name})  # fmt: skip
    for doc in (
        _account("zhang.t", "township_staff", T),
        _account("li.t", "township_head", T),
        _account("wang.o", "township_staff", OTHER_T),
        _account("jg.v201", "village_agent", A),
        _account("gone.t", "township_staff", T, disabled=True),
    ):
        save_document(directory, doc)
    save_document(ensure_database(server, "settings"), {
        "_id": "settings:district", "type": "settings",
        "calendar": {"exceptions": [], "announced_years": []},
        "sla": {"yellow_remaining_days": 3, "yellow_elapsed_ratio": 0.7},
    })  # fmt: skip
    township = ensure_database(server, "township")
    for opened in CASES:
        for doc in opened.docs:
            save_document(township, doc)
    yield server
    couch_server.check_alive()


@pytest.fixture(scope="module")
def console(couch: Any, couch_server: CouchUnderTest, tmp_path_factory: Any) -> Iterator[Any]:
    """The console app on SQLite, its projection following every 0.2 s."""
    url = f"sqlite:///{tmp_path_factory.mktemp('township') / 'township.sqlite'}"
    township_db.migrate(url)
    settings = TownshipSettings(code=T, couchdb_url=couch_server.url, database_url=url,
                                project_every=0.2)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        poll(lambda: "张三" in _inbox_text(client, login=True), "the cases in the inbox")
        client.post("/logout", data={"_csrf_token": client.cookies.get(CSRF, "")})
        yield client


def _form(client: TestClient[Litestar], path: str, **data: str) -> Any:
    client.get("/login")
    return client.post(path, data={**data, "_csrf_token": client.cookies[CSRF]},
                       follow_redirects=False)  # fmt: skip


def _login(
    client: TestClient[Litestar], username: str = "zhang.t", password: str = PASSWORD
) -> Any:
    return _form(client, "/login", username=username, password=password, next="/inbox")


def _inbox_text(client: TestClient[Litestar], login: bool = False, **params: str) -> str:
    if login and "sanji_township_session" not in client.cookies:
        _login(client)
    return client.get("/inbox", params=params).text


def _numbers(page: str) -> set[str]:
    return set(re.findall(r'class="case-link">([^<]+)<', page))


def _n(i: int) -> str:
    return CASES[i - 1].case.case_number


def test_only_this_townships_staff_log_in(console: TestClient[Litestar]) -> None:
    c = console
    answer = c.get("/inbox", follow_redirects=False)
    assert answer.status_code in (302, 303) and answer.headers["location"] == "/login?next=/inbox"
    refusals = [("zhang.t", "wrong-password"), ("wang.o", PASSWORD), ("jg.v201", PASSWORD),
                ("gone.t", PASSWORD), ("nobody", PASSWORD)]  # fmt: skip
    for username, password in refusals:
        refused = _login(c, username, password)
        assert refused.status_code == 400 and "登录名或密码不正确" in refused.text, username
    assert c.post("/login", data={"username": "zhang.t", "password": PASSWORD}).status_code == 403
    done = _login(c, "ZHANG.T ")
    assert done.status_code in (302, 303) and done.headers["location"] == "/inbox"
    page = c.get("/inbox").text
    assert 'id="me">zhang.t 同志<' in page
    assert _numbers(page) == {o.case.case_number for o in CASES}


def test_the_inbox_shows_each_case_as_staff_need_it(console: TestClient[Litestar]) -> None:
    page = _inbox_text(console, login=True)
    row = re.search(rf'<tr data-case="{_n(1)}">(.*?)</tr>', page, re.S)
    assert row
    cells = row[1]
    assert "最低生活保障申请" in cells and "张三" in cells and "500109********0020" in cells
    assert "示范村" in cells and "帮代办" in cells and "已接收" in cells  # received on arrival
    assert "500109194501010020" not in page  # ID numbers are masked
    counter = re.search(rf'<tr data-case="{_n(4)}">(.*?)</tr>', page, re.S)
    assert counter and "窗口" in counter[1] and 'class="sla red"' in counter[1]
    accepted = re.search(rf'<tr data-case="{_n(3)}">(.*?)</tr>', page, re.S)
    assert accepted and 'class="sla green"' in accepted[1] and "已受理" in accepted[1]
    assert re.search(r'id="count-red"[^>]*>[^<]*<b>1</b>', page)
    assert re.search(r'id="count-green"[^>]*>[^<]*<b>1</b>', page)
    assert re.search(r'id="count-yellow"[^>]*>[^<]*<b>0</b>', page)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "business"}, {2, 4}),
        ({"mode": "agency"}, {1, 3}),
        ({"status": "accepted"}, {3, 4}),
        ({"colour": "red"}, {4}),
        ({"village": B}, {2}),
        ({"staff": UNASSIGNED}, {1, 2, 3, 4}),
        ({"q": "张"}, {1}),
        ({"q": "13812345678"}, {1}),
        ({"kind": "government", "status": "received"}, {1}),
        ({"kind": "nonsense", "colour": "purple", "page": "x"}, {1, 2, 3, 4}),
    ],
)
def test_filters_and_search(
    console: TestClient[Litestar], params: dict[str, str], expected: set[int]
) -> None:
    page = _inbox_text(console, login=True, **params)
    assert _numbers(page) == {_n(i) for i in expected}, params
    if not expected:
        assert 'id="no-cases"' in page


def test_the_filters_offer_the_townships_villages_and_staff(console: TestClient[Litestar]) -> None:
    page = _inbox_text(console, login=True)
    village = re.search(r'<select name="village">(.*?)</select>', page, re.S)
    assert village and f'value="{A}"' in village[1] and f'value="{B}"' in village[1]
    assert ">示范村<" in village[1] and ">新华村<" in village[1]
    staff = re.search(r'<select name="staff">(.*?)</select>', page, re.S)
    assert staff and 'value="zhang.t"' in staff[1] and 'value="li.t"' in staff[1]
    assert 'value="wang.o"' not in staff[1] and 'value="gone.t"' not in staff[1]


def test_search_by_case_number(console: TestClient[Litestar]) -> None:
    assert _numbers(_inbox_text(console, login=True, q=_n(2))) == {_n(2)}


def test_a_case_page_and_one_of_another_township(console: TestClient[Litestar]) -> None:
    _login(console)
    page = console.get(f"/cases/{_n(3)}").text
    assert 'id="timeline"' in page and "受理" in page and "李四" in page
    assert console.get("/cases/500109001001-20261128-XXXX0000-0001").status_code == 404


def test_new_cases_appear_while_the_page_is_open(console: TestClient[Litestar], couch: Any) -> None:
    _login(console)
    before = console.get("/inbox/marker").json()["marker"]
    fresh = _open(5, SHOP, village=A, mode=Mode.VIDEO, when=datetime.now(UTC), name="赵六")
    save_document(couch["township"], fresh.docs[0])
    moved = poll(
        lambda: (m := console.get("/inbox/marker").json()["marker"]) != before and m, "the marker"
    )
    assert moved != before
    part = console.get("/inbox", params={"partial": "1"}).text
    assert fresh.case.case_number in part and "<html" not in part


def test_the_session_times_out(couch_server: CouchUnderTest, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idle.sqlite'}"
    township_db.migrate(url)
    settings = TownshipSettings(code=T, couchdb_url=couch_server.url, database_url=url,
                                project_every=0, session_idle=0.5)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        assert _login(client).status_code in (302, 303)
        assert client.get("/inbox").status_code == 200
        time.sleep(0.7)
        gone = client.get("/inbox", follow_redirects=False)
        assert gone.headers["location"] == "/login?next=/inbox&expired=true"


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(
    request: pytest.FixtureRequest, tmp_path: Path, couch: Any
) -> Iterator[sessionmaker[Session]]:
    """A township database of each kind, caught up with the township database."""
    with throwaway_database(request.param, tmp_path) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        made = make_sessionmaker(engine)
        project_township(made, couch)
        yield made
        engine.dispose()


def test_inbox_queries_on_both_databases(sessions: sessionmaker[Session]) -> None:
    today = date.today()
    with sessions() as session:
        everything = inbox_page(session, T, InboxFilter(), today)
        assert everything.total >= 4 and everything.pages == 1
        assert everything.colours[Colour.RED] == 1 and everything.colours[Colour.GREEN] == 1
        business = inbox_page(session, T, InboxFilter(kind="business", q="示范"), today)
        assert [r.case_number for r, _ in business.rows] == [_n(2)]
        assert inbox_page(session, OTHER_T, InboxFilter(), today).total == 0
        assert latest_change(session, T) != latest_change(session, OTHER_T)
        beyond = inbox_page(session, T, InboxFilter(page=99), today)
        assert beyond.page == 1 and len(beyond.rows) <= PAGE_SIZE


def test_the_node_receives_each_arriving_case_once(
    console: TestClient[Litestar], couch: Any
) -> None:
    township = couch["township"]
    for opened in CASES[:2]:  # opened at a kiosk, nothing from the township yet
        events = [township[i] for i in township if i.startswith("case_event:" + opened.case.id[5:])]
        received = [e for e in events if e["kind"] == "received"]
        assert len(received) == 1, opened.case.case_number
        event = received[0]
        assert event["author"] == "node" and event["origin"]["unit"] == T
        assert event["payload"]["receiver"] == T
        assert event["payload"]["sender"] == opened.case.origin.key
    # Cases received before (3, 4) got no second `received`.
    for opened in CASES[2:4]:
        events = [township[i] for i in township if i.startswith("case_event:" + opened.case.id[5:])]
        assert sum(e["kind"] == "received" for e in events) == 1


def test_event_numbers_are_never_reused(sessions: sessionmaker[Session], couch: Any) -> None:
    writer = EventWriter(sessions, "500109001000")
    opened = CASES[0].case
    scratch = ensure_database(couch, "scratch_events")
    taken: list[int] = []

    def write() -> None:
        for _ in range(5):
            for event in writer.append(scratch, opened, [Resumed(), Resumed()], author="t"):
                taken.append(event.counter)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == list(range(1, 41))
    assert len({writer.origin().key for _ in range(3)}) == 1


def test_three_colour_supervision(console: TestClient[Litestar]) -> None:
    _login(console)
    page = console.get("/supervision").text
    assert re.search(r'id="total-red"[^>]*>[^<]*<b>1</b>', page)
    assert re.search(r'id="total-green"[^>]*>[^<]*<b>1</b>', page)
    overdue = re.search(r'<table id="overdue">(.*?)</table>', page, re.S)
    assert overdue and _n(4) in overdue[1] and _n(3) not in overdue[1]
    by_service = re.search(r'<table id="by-service"[^>]*>(.*?)</table>', page, re.S)
    assert by_service
    shop = re.search(r'<tr data-key="500109SW0001">(.*?)</tr>', by_service[1], re.S)
    assert shop and re.search(r'class="n red">1<', shop[1])
    assert re.search(r'<table id="by-staff"', page)


def test_supervision_on_both_databases(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        figures = supervise(session, T, date.today())
        assert figures.totals[Colour.RED] == 1 and figures.totals[Colour.GREEN] == 1
        assert [r.case_number for r in figures.overdue] == [_n(4)]
        services = {t.key: t for t in figures.by_service}
        assert services["500109SW0001"].counts[Colour.RED] == 1
        assert services["500109ZW0020"].counts[Colour.GREEN] == 1
        assert sum(t.total for t in figures.by_staff) == 2
        assert supervise(session, OTHER_T, date.today()).overdue == []
