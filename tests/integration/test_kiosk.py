"""The village kiosk against a real district and township (pouchdb-server), set up by sync.topology.

The township node (its real app, served by uvicorn on a loopback port) answers the kiosk's
enrolment. The tests run in order on one kiosk: enrol, log in offline, browse the catalogue,
sync, lose the credentials.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvicorn
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient

from central.demo import demo_items
from central.services.catalogue import initials
from sync.couch import connect, couch_errors, save_document
from sync.devserver import PouchServer, free_port
from sync.errors import DocNotFound
from sync.topology import (
    apply_revocations,
    setup_district,
    village_database,
)
from tests.servers import join_district
from tests.waiting import poll
from township import db as township_db
from township.app import create_app as create_township_app
from township.settings import TownshipSettings
from village_node.app import create_app
from village_node.settings import Settings, load_enrolment, save_enrolment

DISTRICT = "500109000000"
T = "500109102000"
A = "500109102001"
REG = f"{A}-aa11bb22"
CODE = "ABCD-EFGH-JKMN"
AGENT, AGENT_PASSWORD = "agent_a", "village-pass-1"
TEMPLATE = b"%PDF-1.4 demo template"
ITEMS = [i for i in demo_items() if i["code"] in {
    "500109DW0001", "500109DW0002", "500109ZW0001", "500109ZW0004",
    "500109SW0001", "500109SH0004"}]  # fmt: skip
CSRF = "sanji_kiosk_csrf"

_hasher = PasswordHasher()


def _directory() -> list[dict[str, Any]]:
    def unit(code: str, level: str, village: str | None) -> dict[str, Any]:
        return {"_id": f"unit:{code}", "type": "unit", "code": code, "name": f"单位{code[-3:]}",
                "level": level, "township": T if level != "district" else None,
                "village": village}  # fmt: skip

    def account(name: str, role: str, unit: str, village: str | None, **extra: Any) -> dict:
        return {"_id": f"account:{name}", "type": "account", "username": name, "role": role,
                "unit": unit, "display_name": f"{name} 代办员",
                "password_hash": _hasher.hash(AGENT_PASSWORD), "disabled": False,
                "township": T, "village": village, **extra}  # fmt: skip

    return [
        unit(DISTRICT, "district", None),
        unit(T, "township", None),
        unit(A, "village", A),
        account(AGENT, "village_agent", A, A),
        account("agent_off", "village_agent", A, A, disabled=True),
        account("staff_t", "township_staff", T, None),
        {
            "_id": f"kiosk_registration:{REG}",
            "type": "kiosk_registration",
            "registration": REG,
            "code_hash": _hasher.hash(CODE),
            "issued_at": "2026-11-28T08:00:00+00:00",
            "expires_at": "2099-12-31T00:00:00+00:00",
            "revoked": False,
            "township": T,
            "village": A,
        },  # fmt: skip
    ]


def _catalogue() -> list[dict[str, Any]]:
    docs = []
    for item in ITEMS:
        doc = {"_id": f"catalogue_item:{item['code']}:000001", "type": "catalogue_item",
               "version": 1, **item, "initials": initials(item["name"])}  # fmt: skip
        if item["code"] == "500109ZW0001":
            doc["_attachments"] = {
                "id_card/身份证样例.pdf": {
                    "content_type": "application/pdf",
                    "data": base64.b64encode(TEMPLATE).decode(),
                }
            }
        docs.append(doc)
    entries = [
        {"code": i["code"], "name": i["name"], "kind": i["kind"],
         "doc": f"catalogue_item:{i['code']}:000001"} for i in ITEMS
    ]  # fmt: skip
    manifest = {"_id": "catalogue_manifest:000001", "type": "catalogue_manifest", "version": 1,
                "published_at": "2026-11-20T02:00:00+00:00", "items": entries}  # fmt: skip
    return [*docs, manifest]


def _db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database for the township node."""
    url = f"sqlite:///{tmp_path_factory.mktemp('township') / 'township.sqlite'}"
    township_db.migrate(url)
    return url


class Network:
    """District and township servers, the township node, and one kiosk."""

    def __init__(self, district: PouchServer, township: PouchServer, endpoint: str) -> None:
        self.district, self.township, self.endpoint = district, township, endpoint
        self.d, self.t = connect(district.url), connect(township.url)
        self.settings: Settings
        self.client: TestClient[Litestar]
        self.node_database = ""
        """The township node's SQL database (its read model and visit calendar)."""

    def has(self, db: str, doc_id: str, server: str = "t") -> bool:
        """Whether a document is in a database of the township (or district) server."""
        with couch_errors():
            return (self.t if server == "t" else self.d)[db].get(doc_id) is not None


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """Both servers set up with the demo directory and catalogue, and a fresh kiosk app."""
    with PouchServer() as district, PouchServer() as township:
        port = free_port()
        node_database = _db(tmp_path_factory)
        server = uvicorn.Server(
            uvicorn.Config(
                create_township_app(TownshipSettings(T, township.url, database_url=node_database)),
                host="127.0.0.1",
                port=port,
                log_level="error",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        network = Network(district, township, f"http://127.0.0.1:{port}")
        network.node_database = node_database
        setup_district(district.url)
        for doc in _directory():
            save_document(network.d["directory"], doc)
        for doc in _catalogue():
            with couch_errors():
                network.d["catalogue"].save(doc)
        assert join_district(district, township.url, T).villages == [A]
        village = village_database(A)
        poll(lambda: network.has("directory", f"kiosk_registration:{REG}"), "the registration")
        poll(lambda: network.has(village, "catalogue_manifest:000001"), "the catalogue")
        poll(lambda: network.has(village, f"account:{AGENT}"), "the agent account")
        poll(lambda: server.started, "the enrolment endpoint")
        network.settings = Settings(tmp_path_factory.mktemp("kiosk"), sync_interval=0)
        with TestClient(create_app(network.settings)) as client:
            network.client = client
            yield network
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _servers_alive(net: Network) -> Iterator[None]:
    yield
    net.district.check_alive()
    net.township.check_alive()


def form(client: TestClient[Litestar], path: str, **data: str) -> Any:
    """POST a form with the CSRF token, without following redirects."""
    return client.post(path, data={**data, "_csrf_token": client.cookies[CSRF]},
                       follow_redirects=False)  # fmt: skip


def login(client: TestClient[Litestar], password: str = AGENT_PASSWORD) -> Any:
    """Log the agent in."""
    client.get("/login")
    return form(client, "/login", username=AGENT, password=password, next="/catalogue")


def store_of(net: Network) -> Any:
    """The kiosk's embedded store."""
    return net.client.app.state.kiosk.store


# --- 1. enrolment ----------------------------------------------------------------------------


def test_until_enrolled_only_the_enrolment_screen(net: Network) -> None:
    c = net.client
    for path in ("/", "/login", "/catalogue", "/catalogue/500109ZW0001"):
        answer = c.get(path, follow_redirects=False)
        assert answer.status_code in (302, 303) and answer.headers["location"] == "/enrol"
    page = c.get("/enrol")
    assert page.status_code == 200 and "终端启用" in page.text and "启用码" in page.text


def test_enrolment_refusals_are_clear(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    wrong = form(c, "/enrol", township_url=net.endpoint, village=A, code="WXYZ-WXYZ-WXYZ")
    assert wrong.status_code == 400 and "启用码不正确" in wrong.text
    bad_village = form(c, "/enrol", township_url=net.endpoint, village="5001", code=CODE)
    assert "12位区划代码" in bad_village.text
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = form(c, "/enrol", township_url=closed, village=A, code=CODE)
    assert unreachable.status_code == 400 and "无法连接镇街服务中心" in unreachable.text
    assert load_enrolment(net.settings) is None
    no_csrf = c.post("/enrol", data={"township_url": net.endpoint, "village": A, "code": CODE})
    assert no_csrf.status_code == 403


def test_enrolment_saves_credentials_and_pulls_the_village(net: Network) -> None:
    c = net.client
    done = form(c, "/enrol", township_url=net.endpoint, village=A, code=CODE.lower())
    assert done.status_code in (302, 303) and done.headers["location"] == "/login"
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    assert (enrolment.village, enrolment.township, enrolment.registration) == (A, T, REG)
    assert enrolment.database == village_database(A) and enrolment.password
    assert os.stat(net.settings.enrolment_path).st_mode & 0o777 == 0o600
    store = store_of(net)
    assert store.get(f"account:{AGENT}")["role"] == "village_agent"
    assert store.get("catalogue_manifest:000001")["version"] == 1
    with pytest.raises(DocNotFound):
        store.get("account:staff_t")  # another unit's account never reaches the village
    page = c.get("/login")
    assert "本终端已启用" in page.text and "登录" in page.text
    assert c.get("/enrol", follow_redirects=False).headers["location"] == "/login"
    poll(lambda: net.has("district", f"enrolment:{REG}", "d"), "the enrolment at the district")


# --- 2. offline login ------------------------------------------------------------------------


def _point_at_closed_port(net: Network) -> Any:
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    save_enrolment(
        net.settings,
        dataclasses.replace(enrolment, couch_url=f"http://127.0.0.1:{free_port()}/"),
    )
    return enrolment


def test_login_works_with_the_township_unreachable(net: Network) -> None:
    c = net.client
    enrolment = _point_at_closed_port(net)
    try:
        wrong = login(c, "wrong")
        assert wrong.status_code == 400 and "登录名或密码不正确" in wrong.text
        disabled = form(c, "/login", username="agent_off", password=AGENT_PASSWORD, next="/")
        assert disabled.status_code == 400 and "登录名或密码不正确" in disabled.text
        ok = login(c)
        assert ok.status_code in (302, 303) and ok.headers["location"] == "/catalogue"
        page = c.get("/catalogue")
        assert page.status_code == 200 and "agent_a 代办员" in page.text
        synced = form(c, "/sync", back="/catalogue")
        assert synced.headers["location"] == "/catalogue"
        page = c.get("/catalogue")
        assert 'id="link">离线' in page.text and "无法连接镇街服务中心" in page.text
        assert "党员组织关系转接" in page.text  # the catalogue is local
    finally:
        save_enrolment(net.settings, enrolment)


def test_sessions_time_out_and_logout_ends_them(net: Network) -> None:
    quick = dataclasses.replace(net.settings, session_idle=1)
    with TestClient(create_app(quick)) as other:
        assert login(other).status_code in (302, 303)
        assert other.get("/catalogue").status_code == 200
        time.sleep(1.5)
        expired = other.get("/catalogue", follow_redirects=False)
        assert (
            "/login" in expired.headers["location"]
            and "expired=true" in expired.headers["location"]
        )
        assert "登录已超时" in other.get(expired.headers["location"]).text
    c = net.client
    login(c)
    assert form(c, "/logout").headers["location"] == "/login"
    assert c.get("/catalogue", follow_redirects=False).headers["location"].startswith("/login")
    login(c)


# --- 3. catalogue ----------------------------------------------------------------------------


def test_catalogue_by_kind_and_search(net: Network) -> None:
    c = net.client
    page = c.get("/catalogue").text
    assert 'id="catalogue-version">1<' in page
    assert all(item["name"] in page for item in ITEMS)
    for label in ("党务", "政务", "商务", "生活"):
        assert label in page
    party = c.get("/catalogue", params={"kind": "party"}).text
    assert "党员组织关系转接" in party and "入党申请受理" in party and "社会保障卡申领" not in party
    by_name = c.get("/catalogue", params={"q": "社会保障"}).text
    assert "社会保障卡申领" in by_name and "党员组织关系转接" not in by_name
    by_initials = c.get("/catalogue", params={"q": "SHBZK"}).text  # 社会保障卡
    assert "社会保障卡申领" in by_initials and "高龄津贴申请" not in by_initials
    none = c.get("/catalogue", params={"q": "zzzz", "kind": "life"}).text
    assert 'id="no-items"' in none


def test_an_items_guide_and_its_template(net: Network) -> None:
    c = net.client
    item = next(i for i in ITEMS if i["code"] == "500109ZW0001")
    page = c.get("/catalogue/500109ZW0001").text
    assert item["name"] in page and item["department"] in page
    for material in item["materials"]:
        assert material["name"] in page
    assert "身份证样例.pdf" in page
    assert ("不收费" if not item["fee"] else "收费") in page
    assert all(label in page for label in ("办理层级", "办理方式", "承诺时限", "法定时限"))
    link = "/catalogue/500109ZW0001/templates/id_card/" + quote("身份证样例.pdf")
    assert link in page
    download = c.get(link)
    assert download.status_code == 200 and download.content == TEMPLATE
    assert download.headers["content-type"].startswith("application/pdf")
    assert c.get("/catalogue/500109XX9999").status_code == 404
    assert c.get("/catalogue/500109ZW0001/templates/id_card/nope.pdf").status_code == 404


# --- 4. sync ---------------------------------------------------------------------------------


def test_sync_pushes_pulls_and_updates_the_header(net: Network) -> None:
    c = net.client
    store = store_of(net)
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    case = {"_id": f"case:{A}:{enrolment.instance}:00000001", "type": "case",
            "schema_version": 1, "village": A, "township": T,
            "origin": {"unit": A, "instance": enrolment.instance}, "counter": 1}  # fmt: skip
    store.put(case)
    assert 'id="waiting">1<' in c.get("/catalogue").text
    event = {"_id": f"case_event:{case['_id'][5:]}:{T}:t1:00000001", "type": "case_event",
             "kind": "accepted", "case_id": case["_id"], "village": A, "township": T,
             "origin": {"unit": T, "instance": "t1t1"}, "counter": 1}  # fmt: skip
    save_document(net.t[village_database(A)], event)

    answer = form(c, "/sync", back="/catalogue")
    assert answer.headers["location"] == "/catalogue"
    page = c.get("/catalogue").text
    assert "同步完成" in page and 'id="link">在线' in page
    assert 'id="waiting">0<' in page and 'id="last-sync">—' not in page
    assert net.has(village_database(A), case["_id"])
    assert store.get(event["_id"])["kind"] == "accepted"
    poll(lambda: net.has("township", case["_id"]), "the case at the township")


def test_the_background_task_syncs_by_itself(net: Network) -> None:
    syncer = net.client.app.state.kiosk.syncer
    before = syncer.state().last_attempt
    time.sleep(1.0)  # the state keeps seconds
    with TestClient(create_app(dataclasses.replace(net.settings, sync_interval=0.2))) as other:
        kiosk = other.app.state.kiosk
        poll(lambda: kiosk.syncer.state().last_attempt > before, "a background sync")
        assert kiosk.syncer.state().last_success == kiosk.syncer.state().last_attempt


# --- 5. revoked ------------------------------------------------------------------------------


def test_a_revoked_kiosk_gets_a_clear_message_and_keeps_its_data(net: Network) -> None:
    c = net.client
    store = store_of(net)
    before = store.info()["doc_count"]
    with couch_errors():
        reg = dict(net.d["directory"][f"kiosk_registration:{REG}"])
    save_document(net.d["directory"], {**reg, "revoked": True})

    def revoked() -> bool:
        with couch_errors():
            doc = net.t["directory"].get(f"kiosk_registration:{REG}")
        return bool(doc and doc["revoked"])

    poll(revoked, "the revocation at the township")
    assert len(apply_revocations(net.township.url)) == 1

    form(c, "/sync", back="/catalogue")
    page = c.get("/catalogue").text
    assert 'id="link">已吊销' in page and "本机数据都已保留" in page
    assert store.info()["doc_count"] == before
    assert "社会保障卡申领" in c.get("/catalogue/500109ZW0001").text
    assert c.get("/enrol").status_code == 200  # a new code may be entered
    assert json.loads(net.settings.enrolment_path.read_text())["username"]  # nothing deleted
    assert Path(net.settings.store_path).exists()
