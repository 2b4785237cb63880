"""The last free slot, fifty citizens at once (issue 6: "exactly one winner, the others told
plainly the slot was taken"), end to end at the district.

The network of ``test_district_bookings`` (its module-scoped ``net`` fixture, fresh for this
module): district and township pouchdb-servers set up by sync.topology, the real township node
over uvicorn, the district's SQL on SQLite. The township offers exactly one staff slot on the
first working day's morning. The district app is served over uvicorn too, and 50 citizens,
each with their own HTTP client (own cookie jar and CSRF token, own loopback source address
127.0.0.x, so a per-address rate limit sees 50 citizens), fill in the form, pick that morning
and then all confirm at the same instant.

A loser is refused one of two ways, both in plain Chinese with "已约满": the township answered
409 (the district then keeps a *cancelled* booking row for the record and withdraws the case:
``visit_cancelled`` + ``withdrawn``), or, once the winner's availability has replicated up, the
district's own check refuses the period before writing anything. Which way each loser goes
depends on timing; on 2 cores typically 6 reach the township and get 409 (the district runs
each page's work in a 6-thread pool), the rest are refused by the district's check.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from central.app import create_app
from central.db.models import Booking
from central.services.read_model import project_district
from central.settings import Settings
from sync.couch import connect, couch_errors
from sync.readmodel import CaseRow
from tests.integration import test_district_bookings as base
from tests.servers import serve, stop
from tests.waiting import poll
from township.models import VisitBooking

net = base.net  # this module's own network (module scope)

CITIZENS = 50
TAKEN = "已约满"


@dataclass
class Attempt:
    """One citizen's try: the final POST's status code and page."""

    citizen: int
    status: int
    text: str


@pytest.fixture(scope="module")
def district_url(net: base.Network) -> Iterator[str]:
    """The district app over uvicorn, registered with the reachable township node."""
    # A generous township timeout: this test is about the race, not about a slow node (a
    # timed-out call would leave a booking *requested*, which another test covers).
    app = create_app(
        Settings(database_url=net.database_url, couchdb_url=net.district.url, township_timeout=30)
    )
    server, thread, url = serve(app)
    net.register(net.node_url)
    # The node trusts the district's key once the directory document has replicated down.
    poll(lambda: _node_doc(net) is not None, "the node's key hash at the township")
    try:
        yield url
    finally:
        stop(server, thread)


def _node_doc(net: base.Network) -> dict[str, Any] | None:
    with couch_errors():
        doc = connect(net.township.url)["directory"].get(f"township_node:{base.T}")
    return dict(doc) if doc else None


def _form(i: int) -> dict[str, str]:
    return {
        "item_code": base.HARDSHIP,
        "village": base.A,
        "person_name": f"李{i}",
        "id_number": base.resident_id(f"50010919400101{100 + i:03d}"),
        "address": f"示例村{i % 7 + 1}组{i + 1}号",
        "qualification": "elderly",
        "qualification_note": "",
        "phone": f"139{i:08d}",
    }


def _client(url: str, i: int) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{i + 2}")
    return httpx.Client(base_url=url, transport=transport, timeout=90, follow_redirects=False)


def _post(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={**data, "_csrf_token": client.cookies[base.CSRF]})


def _citizen(url: str, i: int, slot: str, ready: threading.Barrier) -> Attempt:
    """Fill in the form and pick ``slot``; wait for everyone; confirm."""
    with _client(url, i) as client:
        try:
            assert client.get("/visit").status_code == 200
            step1 = _post(client, "/visit", **_form(i))
            assert step1.status_code in (302, 303), step1.text
            periods = client.get("/visit/periods")
            assert re.search(rf'value="{slot}"\s+>', periods.text), "the slot is offered"
            chosen = _post(client, "/visit/periods", slot=slot)
            assert chosen.headers["location"] == "/visit/confirm"
        except BaseException:
            ready.abort()  # the others stop waiting at once
            raise
        ready.wait(timeout=60)
        done = _post(client, "/visit/confirm")
        return Attempt(i, done.status_code, done.text)


def test_fifty_citizens_race_for_the_last_slot(net: base.Network, district_url: str) -> None:
    day = net.days[0]  # the fixture offers one staff slot on this morning, nothing else
    slot = f"{day.isoformat()}|am"
    ready = threading.Barrier(CITIZENS)
    with ThreadPoolExecutor(CITIZENS) as pool:
        futures = [pool.submit(_citizen, district_url, i, slot, ready) for i in range(CITIZENS)]
        attempts = [f.result() for f in futures]

    winners = [a for a in attempts if a.status == 200]
    losers = [a for a in attempts if a.status != 200]
    assert len(winners) == 1, [(a.citizen, a.status) for a in attempts]
    assert "预约成功" in winners[0].text and 'id="booking-code"' in winners[0].text
    assert len(losers) == CITIZENS - 1
    for lost in losers:  # told plainly, on the periods page, to pick another period
        assert lost.status in (400, 409), (lost.citizen, lost.status)
        assert TAKEN in lost.text and "请另选时段" in lost.text, lost.text[:500]
        assert "选择上门时间" in lost.text and "Traceback" not in lost.text

    # The district: one scheduled booking; the 409 losers' rows kept as cancelled.
    with net.sessions() as session:
        rows = session.query(Booking).filter(Booking.day == day).all()
    scheduled = [b for b in rows if b.status == "scheduled"]
    assert len(scheduled) == 1 and scheduled[0].period == "am"
    assert scheduled[0].phone == f"139{winners[0].citizen:08d}"
    assert scheduled[0].staff_name == base.STAFF_NAME
    cancelled = [b for b in rows if b.status == "cancelled"]
    assert len(rows) == 1 + len(cancelled), [b.status for b in rows]  # none left requested
    assert len(cancelled) == sum(a.status == 409 for a in losers)
    assert all(TAKEN in b.note for b in cancelled)

    # The township: one booking on its calendar and one visit_scheduled in its case database.
    with net.township_sessions() as session:
        taken = session.query(VisitBooking).filter(VisitBooking.day == day).all()
    assert [(b.period, b.staff, b.case_id) for b in taken] == [
        ("am", base.STAFF, scheduled[0].case_id)
    ]
    with couch_errors():
        docs = [r.doc for r in connect(net.township.url)["township"].view(
            "_all_docs", include_docs=True) if r.doc]  # fmt: skip
    visits = [d for d in docs if d.get("kind") == "visit_scheduled"]
    assert [d.get("case_id") for d in visits] == [scheduled[0].case_id]

    # Every loser's case (those the township refused with 409) is withdrawn.
    def all_withdrawn() -> bool:
        project_district(net.sessions, connect(net.district.url))
        with net.sessions() as session:
            states = {
                r.case_id: r.status
                for r in session.query(CaseRow).filter(
                    CaseRow.case_id.in_([b.case_id for b in cancelled])
                )
            }
        return len(states) == len(cancelled) and set(states.values()) <= {"withdrawn"}

    poll(all_withdrawn, "the losers' cases withdrawn", timeout=30)

    # The period now shows full, at the district's service and on the public page.
    service = net.service()

    def full() -> bool:
        view = next(v for v in service.days(base.T) if v.day == day)
        return view.periods[0].free == 0

    poll(full, "the morning to show full at the district")
    with _client(district_url, CITIZENS) as client:
        client.get("/visit")
        assert _post(client, "/visit", **_form(CITIZENS)).status_code in (302, 303)
        page = client.get("/visit/periods")
        assert re.search(rf'value="{slot}"\s+disabled', page.text), "the slot is off"
