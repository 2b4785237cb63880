"""Open311 GeoReport v2 service requests (issue 6 item 8): a home visit requested through the API
goes through the booking service; reading requests shows no personal data; JSON and XML; bad
requests get GeoReport error lists.

The network of ``test_district_bookings`` (its module-scoped ``net`` fixture, fresh for this
module) with the real township node answering.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from central.app import create_app
from central.db.models import Booking
from central.settings import Settings
from sync.couch import connect, couch_errors
from tests.integration import test_district_bookings as base
from tests.waiting import poll

net = base.net  # this module's own network (module scope)

API = "/open311/v2"
NAME, PHONE, ADDRESS = "张奶奶", "13800138030", "示例村5组8号"
PERSON_ID = base.resident_id("50010919400202123")


@pytest.fixture(scope="module")
def api(net: base.Network) -> Iterator[TestClient]:  # type: ignore[type-arg]
    net.register(net.node_url)

    def known() -> bool:
        with couch_errors():
            return connect(net.township.url)["directory"].get(f"township_node:{base.T}") is not None

    poll(known, "the node's key at the township")
    app = create_app(Settings(database_url=net.database_url, couchdb_url=net.district.url))
    with TestClient(app) as client:
        yield client


def _request(**changes: str) -> dict[str, str]:
    values = {
        "service_code": base.HARDSHIP,
        "last_name": "张",
        "first_name": "奶奶",
        "phone": PHONE,
        "address_string": ADDRESS,
        "attribute[village]": base.A,
        "attribute[id_number]": PERSON_ID,
        "attribute[qualification]": "elderly",
    }
    return {k: v for k, v in {**values, **changes}.items() if v != "-"}


def _private(text: str) -> None:
    for secret in (NAME, PHONE, PERSON_ID, ADDRESS, "示例村", base.STAFF_NAME, "elderly", "高龄",
                   "bedridden", "卧床"):  # fmt: skip
        assert secret not in text, secret


def test_post_then_read_it_back_without_personal_data(
    net: base.Network,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    day = net.days[2]
    posted = api.post(f"{API}/requests.json",
                      data=_request(**{"attribute[day]": day.isoformat(),
                                       "attribute[period]": "am"}))  # fmt: skip
    assert posted.status_code == 201, posted.text
    [created] = posted.json()
    ident = created["service_request_id"]
    assert "预约成功" in created["service_notice"] and "预约码" in created["service_notice"]
    with net.sessions() as session:
        booking = session.query(Booking).filter(Booking.visit_id == ident).one()
        assert booking.status == "scheduled" and booking.person_name == NAME
        assert booking.code not in ident  # the id is not the code that moves or cancels

    one = api.get(f"{API}/requests/{ident}.json")
    assert one.status_code == 200
    [found] = one.json()
    assert found["service_request_id"] == ident
    assert found["status"] == "open"
    assert found["service_code"] == base.HARDSHIP and found["service_name"] == "困难党员帮扶申请"
    assert found["agency_responsible"] == "澄江镇"
    assert found["expected_datetime"] == f"{day.isoformat()}T09:00:00+08:00"
    assert found["requested_datetime"].endswith("+08:00") and found["updated_datetime"]
    assert "已预约上门服务" in found["status_notes"]
    _private(one.text)

    listing = api.get(f"{API}/requests.json")
    assert listing.status_code == 200
    assert ident in [r["service_request_id"] for r in listing.json()]
    _private(listing.text)
    assert booking.code not in listing.text
    by_ids = api.get(f"{API}/requests.json", params={"service_request_id": f"{ident},nosuch"})
    assert [r["service_request_id"] for r in by_ids.json()] == [ident]
    assert api.get(f"{API}/requests.json", params={"status": "closed"}).json() == []
    assert len(api.get(f"{API}/requests.json", params={"status": "open"}).json()) >= 1
    other = api.get(f"{API}/requests.json", params={"service_code": "500109ZW0001"})
    assert other.json() == []
    past = api.get(f"{API}/requests.json",
                   params={"start_date": "2020-01-01T00:00:00Z",
                           "end_date": "2020-02-01T00:00:00+08:00"})  # fmt: skip
    assert past.status_code == 200 and past.json() == []

    xml = api.get(f"{API}/requests/{ident}.xml")
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(xml.content)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == ident
    assert root.findtext("request/agency_responsible") == "澄江镇"
    assert root.findtext("request/status") == "open"
    _private(xml.text)
    assert ET.fromstring(api.get(f"{API}/requests.xml").content).find("request") is not None

    # Cancelled by the citizen: closed, with nothing expected any more.
    net.service().cancel(booking.code, PHONE)
    [closed] = api.get(f"{API}/requests/{ident}.json").json()
    assert closed["status"] == "closed" and closed["expected_datetime"] is None
    assert "已取消" in closed["status_notes"]


def test_without_a_period_the_earliest_bookable_one_is_taken(
    net: base.Network,
    api: TestClient,  # type: ignore[type-arg]
) -> None:
    posted = api.post(f"{API}/requests.xml",
                      data=_request(phone="13800138031", address_string="示例村6组1号",
                                    **{"attribute[qualification]": "bedridden",
                                       "description": "行动不便"}))  # fmt: skip
    assert posted.status_code == 201, posted.text
    root = ET.fromstring(posted.content)
    ident = root.findtext("request/service_request_id")
    assert ident and "预约码" in (root.findtext("request/service_notice") or "")
    with net.sessions() as session:
        booking = session.query(Booking).filter(Booking.visit_id == ident).one()
        assert booking.qualification_note == "行动不便"
        assert booking.status in ("scheduled", "requested")
    [found] = api.get(f"{API}/requests/{ident}.json").json()
    assert found["expected_datetime"].startswith(booking.day.isoformat())
    assert "行动不便" not in json.dumps(found, ensure_ascii=False)


def _errors(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert isinstance(body, list) and body
    assert all(set(e) == {"code", "description"} for e in body)
    return list(body)


def test_bad_requests_get_georeport_errors(api: TestClient) -> None:  # type: ignore[type-arg]
    empty = api.post(f"{API}/requests.json", data={})
    assert empty.status_code == 400
    described = " ".join(e["description"] for e in _errors(empty))
    assert all(e["code"] == 400 for e in _errors(empty))
    for field in ("service_code", "attribute[village]", "phone", "address_string",
                  "attribute[qualification]"):  # fmt: skip
        assert field in described, field
    assert "请填写正确的手机号码" in described

    not_door = api.post(f"{API}/requests.json", data=_request(service_code="500109ZW0001"))
    assert not_door.status_code == 400 and "上门服务" in not_door.text
    bad_day = api.post(f"{API}/requests.json", data=_request(**{"attribute[day]": "tomorrow"}))
    assert bad_day.status_code == 400 and "attribute[day]" in bad_day.text
    bad_period = api.post(f"{API}/requests.json",
                          data=_request(**{"attribute[day]": "2026-12-01",
                                           "attribute[period]": "night"}))  # fmt: skip
    assert bad_period.status_code == 400 and "attribute[period]" in bad_period.text
    too_long = api.post(f"{API}/requests.json", data=_request(first_name="长" * 50))
    assert too_long.status_code == 400 and "first_name" in too_long.text
    not_json = api.post(f"{API}/requests.json", content=b"[1, 2",
                        headers={"content-type": "application/json"})  # fmt: skip
    assert not_json.status_code == 400 and _errors(not_json)

    status = api.get(f"{API}/requests.json", params={"status": "pending"})
    assert status.status_code == 400 and "open 或 closed" in status.text
    dates = api.get(f"{API}/requests.json", params={"start_date": "yesterday"})
    assert dates.status_code == 400 and "start_date" in dates.text
    order = api.get(f"{API}/requests.json",
                    params={"start_date": "2026-02-01T00:00:00Z",
                            "end_date": "2026-01-01T00:00:00Z"})  # fmt: skip
    assert order.status_code == 400

    unknown = api.get(f"{API}/requests/nosuch.json")
    assert unknown.status_code == 404 and _errors(unknown)[0]["code"] == 404
    xml = api.get(f"{API}/requests.xml", params={"status": "pending"})
    assert xml.status_code == 400
    root = ET.fromstring(xml.content)
    assert root.tag == "errors" and root.findtext("error/code") == "400"
    assert api.get(f"{API}/requests/x.csv").status_code == 404


def test_a_door_to_door_definition_lists_what_a_request_takes(api: TestClient) -> None:  # type: ignore[type-arg]
    definition = api.get(f"{API}/services/{base.HARDSHIP}.json").json()
    codes = [a["code"] for a in definition["attributes"]]
    visit = ["village", "id_number", "qualification", "qualification_note", "day", "period"]
    assert codes[:6] == visit and len(codes) > 6  # then the item's materials
    by_code = {a["code"]: a for a in definition["attributes"]}
    assert by_code["village"]["required"] and not by_code["day"]["required"]
    assert [v["key"] for v in by_code["period"]["values"]] == ["am", "pm"]
    assert "other" in [v["key"] for v in by_code["qualification"]["values"]]
    assert [a["order"] for a in definition["attributes"]] == list(range(1, len(codes) + 1))
    listed = api.get(f"{API}/services.json").json()
    assert next(s for s in listed if s["service_code"] == base.HARDSHIP)["metadata"] is True
