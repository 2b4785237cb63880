"""Counter intake at the township console against a real pouchdb-server: the replicated
catalogue, pre-review and routing from core, the one-time notice when blocked (nothing
written), the case and its ``submitted`` event written by the node as origin, the inbox, field
errors in Chinese, and a form posted twice saving one case.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from core.cases import case_from_doc, case_id_from_number, event_from_doc
from core.catalogue import Mode
from sync.couch import connect, ensure_database, save_document
from tests.conftest import CouchUnderTest
from tests.integration.test_township_console import CSRF, PASSWORD, T, _account
from tests.waiting import poll
from township import db as township_db
from township.app import create_app
from township.intake import CounterDesk
from township.settings import TownshipSettings

CATALOGUE = Path(__file__).resolve().parents[2] / "central" / "demo" / "catalogue.json"
SHOP = "500109SW0001"  # 个体工商户设立登记: township; premises_proof may follow within 5 days
ALLOWANCE = "500109ZW0004"  # 高龄津贴申请: district level, door to door or agency
ID = "500109194501010020"
OTHER_ID = "500109197812310040"
DISTRICT = "500109000000"


def _catalogue_docs() -> list[dict[str, Any]]:
    """Version 1 of a catalogue as the district's publish writes it: items, then manifest."""
    items = json.loads(CATALOGUE.read_text(encoding="utf-8"))["items"]
    chosen = [i for i in items if i["code"] in (SHOP, ALLOWANCE)]
    docs: list[dict[str, Any]] = [
        {"_id": f"catalogue_item:{i['code']}:000001", "type": "catalogue_item", "version": 1,
         "published_at": "2026-11-01T08:00:00+00:00", **i, "initials": "gtgs"}
        for i in chosen
    ]  # fmt: skip
    docs.append({
        "_id": "catalogue_manifest:000001", "type": "catalogue_manifest", "version": 1,
        "published_at": "2026-11-01T08:00:00+00:00", "published_by": "admin",
        "items": [{"code": i["code"], "name": i["name"], "kind": i["kind"],
                   "doc": f"catalogue_item:{i['code']}:000001"} for i in chosen],
    })  # fmt: skip
    return docs


@pytest.fixture(scope="module")
def couch(couch_server: CouchUnderTest) -> Iterator[Any]:
    """The township's CouchDB: directory, settings, an empty township database, the catalogue."""
    server = connect(couch_server.url)
    for name in ("directory", "settings", "township", "catalogue"):
        if name in server:
            del server[name]
    directory = ensure_database(server, "directory")
    for code, name in ((T, "示范镇"), (DISTRICT, "北碚区")):
        save_document(directory, {"_id": f"unit:{code}", "type": "unit", "code": code,
                                  "name": name})  # fmt: skip
    save_document(directory, _account("zhang.t", "township_staff", T))
    save_document(ensure_database(server, "settings"), {
        "_id": "settings:district", "type": "settings",
        "calendar": {"exceptions": [], "announced_years": []},
        "sla": {"yellow_remaining_days": 3, "yellow_elapsed_ratio": 0.7},
    })  # fmt: skip
    ensure_database(server, "township")
    catalogue = ensure_database(server, "catalogue")
    for doc in _catalogue_docs():
        save_document(catalogue, doc)
    yield server
    couch_server.check_alive()


@pytest.fixture(scope="module")
def console(couch: Any, couch_server: CouchUnderTest, tmp_path_factory: Any) -> Iterator[Any]:
    """The console on SQLite, logged in as township staff, its projection every 0.2 s."""
    url = f"sqlite:///{tmp_path_factory.mktemp('counter') / 'township.sqlite'}"
    township_db.migrate(url)
    settings = TownshipSettings(code=T, couchdb_url=couch_server.url, database_url=url,
                                project_every=0.2)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        client.get("/login")
        login = {"username": "zhang.t", "password": PASSWORD, "next": "/inbox"}
        done = client.post("/login", data={**login, "_csrf_token": client.cookies[CSRF]})
        assert done.status_code == 200
        yield client


def _key(client: TestClient[Litestar], item: str = SHOP) -> str:
    page = client.get("/counter/new", params={"item": item}).text
    found = re.search(r'name="intake_key" value="([0-9a-f]+)"', page)
    assert found, "the form carries an intake key"
    return found[1]


def _intake(client: TestClient[Litestar], **extra: str) -> dict[str, str]:
    return {
        "item": SHOP, "intake_key": _key(client), "applicant_type": "person", "p_name": "张三",
        "p_id": ID, "p_phone": "13800138000", "p_address": "示范镇一街",
        "m_application": "provided", "m_id_card": "provided", "m_premises_proof": "provided",
        **extra,
    }  # fmt: skip


def _post(client: TestClient[Litestar], action: str, data: dict[str, str]) -> Any:
    return client.post("/counter/new", data={**data, "action": action,
                                             "_csrf_token": client.cookies[CSRF]},
                       follow_redirects=False)  # fmt: skip


def _township_ids(couch: Any) -> list[str]:
    return [r.id for r in couch["township"].view("_all_docs") if not r.id.startswith("_")]


def _route(page: str, mode: Mode) -> str:
    row = re.search(rf'<tr class="[^"]*" data-mode="{mode.value}">(.*?)</tr>', page, re.S)
    assert row, mode
    return row[1]


def test_the_service_picker_reads_the_replicated_catalogue(console: TestClient[Litestar]) -> None:
    page = console.get("/inbox").text
    assert 'id="nav-counter"' in page and "窗口受理" in page
    picker = console.get("/counter/new").text
    assert "个体工商户设立登记" in picker and "高龄津贴申请" in picker
    assert "个体工商户设立登记" in console.get("/counter/new", params={"q": "gtgs"}).text
    found = console.get("/counter/new", params={"q": "津贴"}).text
    assert "高龄津贴申请" in found and "个体工商户设立登记" not in found
    form = console.get("/counter/new", params={"item": SHOP}).text
    assert 'name="p_id"' in form and 'name="m_premises_proof"' in form and "承诺后补" in form


def test_review_shows_prereview_and_routing_from_core(
    console: TestClient[Litestar], couch: Any
) -> None:
    data = _intake(console, m_premises_proof="to_follow")
    reviewed = _post(console, "review", data)
    assert reviewed.status_code == 200, reviewed.text
    page = reviewed.text
    commitments = re.search(r'<div class="alert" id="commitments">(.*?)</div>', page, re.S)
    assert commitments and "经营场所使用证明" in commitments[1]
    window, video = _route(page, Mode.WINDOW), _route(page, Mode.VIDEO)
    assert "推荐" in window and "checked" in window
    assert "disabled" not in video and "视频" in video  # the centre is online
    spot = _route(page, Mode.ON_THE_SPOT)
    assert "disabled" in spot
    assert 'id="notice"' not in page and _township_ids(couch) == []


def test_a_blocked_intake_prints_the_notice_and_writes_nothing(
    console: TestClient[Litestar], couch: Any
) -> None:
    data = _intake(console, m_id_card="missing")
    for action in ("review", "save"):
        answer = _post(console, action, data)
        assert answer.status_code == (200 if action == "review" else 400)
        assert 'id="notice"' in answer.text and "一次性告知书" in answer.text
        assert "身份证" in re.search(r'<ul id="blocking">(.*?)</ul>', answer.text, re.S)[1]  # type: ignore[index]
        assert "打印告知书" in answer.text
    assert _township_ids(couch) == []


def test_field_errors_are_refused_in_chinese(console: TestClient[Litestar], couch: Any) -> None:
    bad_id = _post(console, "save", _intake(console, p_id=ID[:-1] + "1"))
    assert bad_id.status_code == 400 and 'id="err-p_id"' in bad_id.text
    empty = _post(console, "save", _intake(console, p_name="", p_phone=""))
    assert empty.status_code == 400
    assert "请填写申请人姓名" in empty.text and "请至少留一个联系电话" in empty.text
    org = _post(console, "save", _intake(console, applicant_type="organisation",
                                         o_name="小卖部", o_code="92500109MA5U000120",
                                         o_contact_phone="13900000000"))  # fmt: skip
    assert org.status_code == 400 and 'id="err-o_code"' in org.text
    unknown = _post(console, "save", _intake(console, item="500109XX9999"))
    assert unknown.status_code == 400 and "没有这个事项" in unknown.text
    keyless = _post(console, "save", _intake(console, intake_key=""))
    assert keyless.status_code == 400 and "表单缺少编号" in keyless.text
    assert _township_ids(couch) == []


def test_save_writes_the_case_as_the_node_and_it_reaches_the_inbox(
    console: TestClient[Litestar], couch: Any
) -> None:
    data = _intake(console, m_premises_proof="to_follow", flags="elderly")
    saved = _post(console, "save", data)
    assert saved.status_code in (302, 303), saved.text
    receipt_url = saved.headers["location"]
    number = re.fullmatch(r"/counter/([^/]+)/receipt", receipt_url)[1]  # type: ignore[index]
    receipt = console.get(receipt_url).text
    assert number in receipt and "受理回执" in receipt and "告知承诺书" in receipt
    assert f'href="/cases/{number}"' in receipt
    case = case_from_doc(dict(couch["township"][case_id_from_number(number)]))
    assert case.village is None and case.township == T and case.handling_unit == T
    assert case.origin.unit == T and case.author == "zhang.t" and case.mode is Mode.WINDOW
    assert case.applicant.name == "张三" and case.catalogue_version == 1
    rows = couch["township"].view(
        "_all_docs", startkey="case_event:", endkey="case_event:\ufff0", include_docs=True
    )
    events = [event_from_doc(dict(r.doc)) for r in rows]
    submitted = [e for e in events if e.kind.value == "submitted"]
    assert len(submitted) == 1 and submitted[0].origin == case.origin
    assert submitted[0].counter == case.counter + 1
    poll(lambda: number in console.get("/inbox").text, "the counter case in the inbox")
    page = console.get(f"/cases/{number}")
    assert page.status_code == 200 and "张三" in page.text


def test_a_double_post_saves_once(console: TestClient[Litestar], couch: Any) -> None:
    data = _intake(console, p_id=OTHER_ID, p_name="李四")
    first = _post(console, "save", data)
    again = _post(console, "save", data)
    assert first.headers["location"] == again.headers["location"]
    assert "未重复受理" in console.get(again.headers["location"]).text
    cases = [i for i in _township_ids(couch) if i.startswith("case:")]
    assert len(cases) == 2  # this one and the previous test's


def test_concurrent_posts_of_one_form_save_once(console: TestClient[Litestar], couch: Any) -> None:
    state = console.app.state
    desk = CounterDesk(state.sessions, state.writer, T, "township")
    item = state.counter_catalogue.item(couch, ALLOWANCE)
    assert item is not None
    form = {"intake_key": "ab" * 12, "applicant_type": "person", "p_name": "王五",
            "p_id": "500109193805120013", "p_phone": "13700000000", "mode": "window",
            "m_id_card": "provided", "m_hukou_book": "provided",
            "m_bank_card": "provided"}  # fmt: skip
    results: list[Any] = []

    def save() -> None:
        results.append(desk.save(couch, form, item[0], item[1], author="zhang.t"))

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    saved = {r.case.id for r in results if r.case is not None}
    assert len(saved) == 1, [r.intake.errors for r in results]
    case = case_from_doc(dict(couch["township"][saved.pop()]))
    assert case.handling_unit == DISTRICT  # a district-level item goes to the district
    assert sum(1 for i in _township_ids(couch) if i.startswith("case:")) == 3


def test_an_open_case_of_the_same_applicant_is_flagged(
    console: TestClient[Litestar], couch: Any
) -> None:
    poll(lambda: "李四" in console.get("/inbox").text, "the earlier case projected")
    data = _intake(console, p_id=OTHER_ID, p_name="李四")
    reviewed = _post(console, "review", data)
    assert 'id="duplicate"' in reviewed.text
    refused = _post(console, "save", data)
    assert refused.status_code == 400 and 'id="err-confirm_duplicate"' in refused.text
    confirmed = _post(console, "save", {**data, "confirm_duplicate": "1"})
    assert confirmed.status_code in (302, 303)
