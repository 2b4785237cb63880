"""Cases at the kiosk against a real township (pouchdb-server): the new case wizard, the
receipt, the cases list, and a township-written event coming back down with a sync.

Reuses the network of test_kiosk (district, township, township node, one kiosk); the tests run
in order on one kiosk: enrol and log in, open cases, sync.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from core.cases import (
    Accepted,
    Origin,
    Received,
    VisitScheduled,
    case_from_doc,
    event_to_doc,
    new_event,
)
from core.clock import Hlc
from sync.couch import save_document
from sync.topology import village_database
from tests.factories import resident_id
from tests.integration import test_kiosk as base
from tests.integration.test_kiosk import AGENT, CODE, Network, form, login, poll, store_of
from village_node.settings import load_enrolment

net = base.net  # the same network fixture, built afresh for this module
_servers_alive = base._servers_alive

A = "500109102001"
T = "500109102000"
BUSINESS = "500109SW0001"  # 个体工商户设立登记: premises_proof may follow within 5 working days


ID = resident_id("50010919800101001")
BAD_ID = ID[:-1] + ("0" if ID[-1] != "0" else "1")


def case_form(client: Any, **extra: str) -> dict[str, str]:
    """A complete intake form for 个体工商户设立登记 with a fresh intake key."""
    page = client.get("/cases/new", params={"item": BUSINESS}).text
    key = re.search(r'name="intake_key" value="([0-9a-f]+)"', page)
    assert key, "the form carries an intake key"
    return {
        "item": BUSINESS,
        "intake_key": key[1],
        "applicant_type": "person",
        "p_name": "张三",
        "p_id": ID,
        "p_phone": "13800138000",
        "p_address": "示范村一组",
        "m_application": "provided",
        "m_id_card": "provided",
        "m_premises_proof": "to_follow",
        **extra,
    }


def case_docs(net: Network) -> list[str]:
    """Ids of the case documents in the kiosk's store."""
    rows = store_of(net).changes()["results"]
    return [r["id"] for r in rows if r["id"].startswith("case:")]


def test_enrol_and_log_in(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    done = form(c, "/enrol", township_url=net.endpoint, village=A, code=CODE)
    assert done.headers["location"] == "/login"
    assert login(c).status_code in (302, 303)
    page = c.get("/cases")
    assert page.status_code == 200 and 'id="no-cases"' in page.text and "新建办件" in page.text


def test_choosing_a_service_then_review_shows_routing(net: Network) -> None:
    c = net.client
    assert "个体工商户设立登记" in c.get("/cases/new").text
    data = case_form(c)
    reviewed = form(c, "/cases/new", action="review", **data)
    assert reviewed.status_code == 200 and 'id="routes"' in reviewed.text
    assert "窗口" in reviewed.text and "推荐" in reviewed.text
    assert 'id="commitments"' in reviewed.text and "承诺后补" in reviewed.text
    assert case_docs(net) == []  # review saves nothing


def test_bad_id_checksum_is_a_chinese_error_and_saves_nothing(net: Network) -> None:
    c = net.client
    answer = form(c, "/cases/new", action="save", **case_form(c, p_id=BAD_ID))
    assert answer.status_code == 400
    assert 'id="err-p_id"' in answer.text and "校验位不正确" in answer.text
    assert case_docs(net) == []


def test_a_blocking_prereview_shows_the_notice_and_saves_nothing(net: Network) -> None:
    c = net.client
    answer = form(c, "/cases/new", action="save", **case_form(c, m_id_card="missing"))
    assert answer.status_code == 400
    assert 'id="notice"' in answer.text and "一次性告知书" in answer.text
    assert "不允许承诺后补" in answer.text and "未保存" in answer.text
    assert case_docs(net) == []


def test_open_a_case_with_a_material_to_follow_and_see_the_receipt(net: Network) -> None:
    c = net.client
    data = case_form(c, mode="window")
    saved = form(c, "/cases/new", action="save", **data)
    assert saved.status_code in (302, 303), saved.text
    receipt_url = saved.headers["location"]
    assert receipt_url.endswith("/receipt")
    again = form(c, "/cases/new", action="save", **data)  # the same form posted twice
    assert again.headers["location"] == receipt_url
    assert len(case_docs(net)) == 1
    receipt = c.get(receipt_url).text
    number = receipt_url.split("/")[2]
    assert number in receipt and "个体工商户设立登记" in receipt
    assert 'id="expected-due"' in receipt and re.search(r"\d{4}-\d{2}-\d{2}", receipt)
    assert "告知承诺书" in receipt and 'id="receipt-commitments"' in receipt
    assert "窗口" in receipt
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    case = case_from_doc(store_of(net).get(case_docs(net)[0]))
    assert case.origin == Origin(A, enrolment.instance) and case.catalogue_version == 1
    assert case.author == AGENT and case.item_code == BUSINESS
    local = store_of(net).get_local("_local/kiosk")
    assert local["counters"][case.origin.key] == 2  # the case and its submitted event


def test_same_applicant_and_service_warns(net: Network) -> None:
    c = net.client
    answer = form(c, "/cases/new", action="save", **case_form(c))
    assert answer.status_code == 400 and 'id="duplicate"' in answer.text
    assert len(case_docs(net)) == 1


def test_the_case_is_listed_and_searchable(net: Network) -> None:
    c = net.client
    page = c.get("/cases").text
    assert "张三" in page and "已提交" in page and ID not in page  # the ID is masked
    assert 'id="no-cases"' in c.get("/cases", params={"status": "accepted"}).text
    number = re.search(r'class="case-link">([^<]+)<', page)
    assert number
    # Searched in SQL: part of the phone (3+ digits), of the name, of the case number.
    for found in ("138001", "8000", "三", number[1][-9:], "张三"):
        assert "张三" in c.get("/cases", params={"q": found}).text, found
    for missing in ("139", "李", "9999", "%", "_"):
        assert 'id="no-cases"' in c.get("/cases", params={"q": missing}).text, missing
    detail = c.get(f"/cases/{number[1]}").text
    assert 'id="timeline"' in detail and "已提交" in detail
    assert c.get("/cases/500109102001-20260101-XXXX-0001").status_code == 404


def test_sync_up_and_a_township_event_comes_back(net: Network) -> None:
    c = net.client
    form(c, "/sync", back="/cases")
    case_id = case_docs(net)[0]
    village = village_database(A)
    assert net.has(village, case_id)
    case = case_from_doc(store_of(net).get(case_id))
    origin = Origin(T, "tw01")
    now = datetime.now(UTC)
    stamp = Hlc(int(now.timestamp() * 1000) + 1000, 0, origin.key)
    received = new_event(
        case,
        Received(receiver=T, received_at=now),
        origin=origin, counter=1, hlc=stamp, wall_time=now, author="staff_t",
    )  # fmt: skip
    accepted = new_event(
        case,
        Accepted(),
        origin=origin, counter=2, hlc=stamp.successor(origin.key), wall_time=now,
        author="staff_t",
    )  # fmt: skip
    for event in (received, accepted):
        save_document(net.t[village], event_to_doc(event))
    form(c, "/sync", back="/cases")
    poll(lambda: "已受理" in c.get("/cases").text, "the accepted state at the kiosk", 5)
    page = c.get("/cases", params={"status": "accepted"}).text
    assert "张三" in page and 'class="sla' in page
    detail = c.get(f"/cases/{case.case_number}").text
    assert "已接收" in detail and 'id="status"><b>已受理' in detail


def test_a_home_visit_the_township_scheduled_shows_on_the_case(net: Network) -> None:
    c = net.client
    case = case_from_doc(store_of(net).get(case_docs(net)[0]))
    origin = Origin(T, "tw01")
    now = datetime.now(UTC)
    stamp = Hlc(int(now.timestamp() * 1000) + 5000, 0, origin.key)
    visit = new_event(
        case,
        VisitScheduled(visit_id="v1", day=date(2026, 12, 3), period="pm", staff="t.li",
                       staff_name="李强"),
        origin=origin, counter=3, hlc=stamp, wall_time=now, author="t.li",
    )  # fmt: skip
    save_document(net.t[village_database(A)], event_to_doc(visit))
    form(c, "/sync", back="/cases")
    detail = c.get(f"/cases/{case.case_number}").text
    section = re.search(r'<section class="card" id="visits">(.*?)</section>', detail, re.S)
    assert section and "2026-12-03" in section[1] and "下午" in section[1]
    assert "李强" in section[1] and "已安排" in section[1]
