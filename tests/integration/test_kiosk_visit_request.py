"""A home visit asked for at an offline kiosk: the agent picks a working day and period, the
request syncs up, the township node confirms a free staff slot on its own, and after the next
sync the kiosk shows who comes when.

Reuses the network of test_kiosk (district and township pouchdb-servers set up by
sync.topology, the real township node with its projection loop, one kiosk), built afresh.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from core.calendar import WorkCalendar
from core.cases import (
    EventKind,
    Origin,
    Person,
    Submitted,
    VisitRequested,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CatalogueItem, Eligibility, Mode
from core.clock import Hlc
from sync.couch import save_document
from sync.sql import make_engine, make_sessionmaker
from sync.topology import village_database
from tests.integration import test_kiosk as base
from tests.integration.test_kiosk import CODE, Network, form, login, poll, store_of
from tests.integration.test_kiosk_cases import resident_id
from township.visits import Slot, set_offers
from village_node.cases import visit_days

net = base.net  # the same network fixture, built afresh for this module
_servers_alive = base._servers_alive

A = "500109102001"
ELDERLY_ALLOWANCE = "500109ZW0004"  # 高龄津贴申请: door-to-door or agency
STAFF = {"staff_t": "staff_t 代办员"}


def _open_door_to_door_case(net: Network) -> str:
    c = net.client
    page = c.get("/cases/new", params={"item": ELDERLY_ALLOWANCE}).text
    key = re.search(r'name="intake_key" value="([0-9a-f]+)"', page)
    assert key
    answer = form(
        c, "/cases/new", action="save", item=ELDERLY_ALLOWANCE, intake_key=key[1],
        applicant_type="person", p_name="王奶奶", p_id=resident_id("50010919400101002"),
        p_phone="13800138001", p_address="示范村三组", flags="elderly", mode="door_to_door",
        m_id_card="provided", m_hukou_book="provided", m_bank_card="provided",
    )  # fmt: skip
    assert answer.status_code in (302, 303), answer.text[:3000]
    return str(answer.headers["location"]).split("/")[2]


def _events(net: Network, kind: EventKind) -> list[dict[str, object]]:
    rows = store_of(net).changes(include_docs=True)["results"]
    return [
        r["doc"] for r in rows if r["id"].startswith("case_event:") and r["doc"]["kind"] == kind
    ]


def _two_working_days(calendar: WorkCalendar) -> tuple[date, date]:
    days = visit_days(calendar)
    return days[0], days[1]


def test_the_agent_asks_for_a_visit_offline(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    form(c, "/enrol", township_url=net.endpoint, village=A, code=CODE)
    assert login(c).status_code in (302, 303)
    number = _open_door_to_door_case(net)
    page = c.get(f"/cases/{number}").text
    assert 'id="visit-request-form"' in page
    first, second = _two_working_days(WorkCalendar())

    # Refused, nothing written: a weekend day, a past day, a made-up period.
    saturday = first + timedelta(days=(5 - first.weekday()) % 7)
    for day, period in ((saturday.isoformat(), "am"), ("2026-01-05", "am"),
                        (first.isoformat(), "evening")):  # fmt: skip
        refused = form(c, f"/cases/{number}/visit-request", day=day, period=period)
        assert refused.status_code == 400 and 'id="err-visit"' in refused.text, (day, period)
    assert _events(net, EventKind.VISIT_REQUESTED) == []

    asked = form(c, f"/cases/{number}/visit-request", day=first.isoformat(), period="pm",
                 note="老人行动不便, 请先电话联系")  # fmt: skip
    assert asked.status_code in (302, 303)
    again = form(c, f"/cases/{number}/visit-request", day=first.isoformat(), period="pm")
    assert again.status_code in (302, 303)  # the same form twice: written once
    other = form(c, f"/cases/{number}/visit-request", day=second.isoformat(), period="am")
    assert other.status_code == 400 and "已有上门安排" in other.text
    requested = _events(net, EventKind.VISIT_REQUESTED)
    assert len(requested) == 1
    payload = requested[0]["payload"]
    assert isinstance(payload, dict)
    assert (payload["day"], payload["period"]) == (first.isoformat(), "pm")
    page = c.get(f"/cases/{number}").text
    visits = re.search(r'<section class="card" id="visits">(.*?)</section>', page, re.S)
    assert visits and "待确认" in visits[1] and 'id="visit-request-form"' not in page


def test_the_township_confirms_and_the_kiosk_shows_the_time(net: Network) -> None:
    c = net.client
    first, _ = _two_working_days(WorkCalendar())
    engine = make_engine(net.node_database)
    sessions: sessionmaker[Session] = make_sessionmaker(engine)
    try:
        set_offers(sessions, WorkCalendar(), date.today(), STAFF, [first],
                   {Slot(first, "pm", "staff_t")})  # fmt: skip
    finally:
        engine.dispose()
    form(c, "/sync", back="/cases")  # the request goes up; the node confirms on its next round
    village = village_database(A)

    def scheduled() -> bool:
        rows = net.t[village].view("_all_docs", startkey="case_event:", endkey="case_event:\ufff0",
                                   include_docs=True)  # fmt: skip
        return any(r.doc.get("kind") == "visit_scheduled" for r in rows)

    poll(scheduled, "the township's visit_scheduled in the village database", 30)
    form(c, "/sync", back="/cases")
    number = next(iter(re.findall(r'class="case-link">([^<]+)<', c.get("/cases").text)))
    page = c.get(f"/cases/{number}").text
    visits = re.search(r'<section class="card" id="visits">(.*?)</section>', page, re.S)
    assert visits and first.isoformat() in visits[1] and "下午" in visits[1]
    assert "已安排" in visits[1] and "staff_t" in visits[1]


def test_a_visit_a_citizen_booked_at_the_district_reaches_the_kiosk(net: Network) -> None:
    """A booking is a case the district writes into its `district` database; it travels down
    to the township and to the village's kiosk like any case of that village."""
    item = next(i for i in base.ITEMS if i["code"] == ELDERLY_ALLOWANCE)
    district_origin = Origin("500109000000", "dist0001")
    now = datetime.now(UTC)
    first, _ = _two_working_days(WorkCalendar())
    case = new_case(
        origin=district_origin, counter=1, hlc=Hlc(int(now.timestamp() * 1000), 0,
        district_origin.key), wall_time=now, author="citizen", village=A, township=base.T,
        item=msgspec.convert(item, CatalogueItem, strict=False), catalogue_version=1,
        applicant=Person(name="李爷爷", id_number=resident_id("50010919380101003"),
                         phone="13800138002", flags=(Eligibility.ELDERLY,)),
        mode=Mode.DOOR_TO_DOOR, handling_unit=base.T,
    )  # fmt: skip
    submitted = new_event(
        case, Submitted(), origin=district_origin, counter=2,
        hlc=case.stamp.successor(district_origin.key), wall_time=now, author="citizen",
    )  # fmt: skip
    requested = new_event(
        case, VisitRequested(visit_id="b-demo-1", day=first, period="am"),
        origin=district_origin, counter=3, hlc=submitted.stamp.successor(district_origin.key),
        wall_time=now, author="citizen",
    )  # fmt: skip
    for doc in (case_to_doc(case), event_to_doc(submitted), event_to_doc(requested)):
        save_document(net.d["district"], doc)
    poll(lambda: net.has(village_database(A), requested.id), "the booking in the village db", 30)
    form(net.client, "/sync", back="/cases")
    page = net.client.get("/cases").text
    assert case.case_number in page and "李爷爷" in page
    detail = net.client.get(f"/cases/{case.case_number}").text
    visits = re.search(r'<section class="card" id="visits">(.*?)</section>', detail, re.S)
    assert visits and first.isoformat() in visits[1]
