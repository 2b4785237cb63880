"""The JSON API under /api/v1, driven over HTTP against real SQL databases and pouchdb-server.

One app per database kind serves the whole module (publish versions accumulate), so every test
uses codes of its own and asserts only on what it created.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.db import make_engine, make_sessionmaker, migrate
from central.db.models import Item, Unit
from central.services import accounts, hierarchy, outbox
from central.settings import Settings
from sync.couch import connect, get_attachment
from tests.conftest import CouchUnderTest
from tests.sql import throwaway_database

DISTRICT, TOWNSHIP, VILLAGE = "500109000000", "500109001000", "500109001001"
ADMIN, STAFF, PASSWORD = "api-admin", "api-staff", "correct-horse-1"
TEMPLATE_LIMIT = 64 * 1024
FIXED_DATABASES = ("catalogue", "directory", "settings", "district")


@dataclass
class Env:
    """The app under test, sessions on its database and its CouchDB URL."""

    app: Litestar
    sessions: sessionmaker[Session]
    couch_url: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    couch_server: CouchUnderTest,
) -> Iterator[Env]:
    """A migrated database of each kind with a district admin and a township clerk, and the app."""
    # The district writes to fixed database names; each database kind starts from empty ones.
    server = connect(couch_server.url)
    for name in FIXED_DATABASES:
        if name in server:
            del server[name]
    with throwaway_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        migrate(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with sessions() as s:
            hierarchy.add_unit(s, DISTRICT, "北碚区")
            hierarchy.add_unit(s, TOWNSHIP, "天生街道")
            hierarchy.add_unit(s, VILLAGE, "天生社区")
            accounts.create_account(s, ADMIN, "区管理员", "district_admin", DISTRICT, PASSWORD)
            accounts.create_account(s, STAFF, "窗口人员", "township_staff", TOWNSHIP, PASSWORD)
        # Written now, so the app's first flushes do not race each other over the same rows.
        outbox.flush(sessions, lambda: connect(couch_server.url))
        settings = Settings(
            database_url=url,
            couchdb_url=couch_server.url,
            max_template_bytes=TEMPLATE_LIMIT,
            max_csv_bytes=16 * 1024,
        )
        yield Env(create_app(settings), sessions, couch_server.url)
        engine.dispose()
    couch_server.check_alive()


def seed(env: Env, service: Callable[..., Any], *args: Any) -> Any:
    """Run a service directly, then write what it queued for CouchDB (see the fixture above)."""
    with env.sessions() as s:
        result = service(s, *args)
    outbox.flush(env.sessions, lambda: connect(env.couch_url))
    return result


def csrf(client: TestClient) -> dict[str, str]:
    """The CSRF header for the client's cookie (fetched with a GET if it has none yet)."""
    if "sanji_csrf" not in client.cookies:
        client.get("/api/v1/session")
    return {"x-csrftoken": client.cookies["sanji_csrf"]}


def send(client: TestClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """An unsafe request with the CSRF header."""
    headers = {**csrf(client), **kwargs.pop("headers", {})}
    return client.request(method, path, headers=headers, **kwargs)


def login(client: TestClient, username: str, password: str) -> httpx.Response:
    """POST /api/v1/session."""
    return send(
        client, "POST", "/api/v1/session", json={"username": username, "password": password}
    )


@pytest.fixture(scope="module")
def admin(env: Env) -> Iterator[TestClient]:
    """A client logged in as the district administrator."""
    with TestClient(env.app) as client:
        assert login(client, ADMIN, PASSWORD).status_code == 200
        yield client


@pytest.fixture
def anonymous(env: Env) -> Iterator[TestClient]:
    """A client nobody has logged in with."""
    with TestClient(env.app) as client:
        yield client


def fields_of(response: httpx.Response) -> list[str]:
    """The fields an error answer names."""
    return [e["field"] for e in response.json()["errors"]]


def item_body(code: str, **changes: Any) -> dict[str, Any]:
    """A valid catalogue item."""
    return {
        "code": code,
        "name": f"城乡居民养老保险参保登记{code[-3:]}",
        "kind": "government",
        "handling_level": "township",
        "modes": ["agency", "window"],
        "department": "天生街道社会保障服务所",
        "case_type": "promised",
        "legal_limit_days": 20,
        "promised_limit_days": 5,
        "materials": [
            {"key": "id_card", "name": "居民身份证", "form": "original"},
            {
                "key": "hukou",
                "name": "户口簿",
                "form": "copy",
                "may_follow": True,
                "follow_days": 5,
            },
        ],
        **changes,
    }


# --- session -----------------------------------------------------------------------------


def test_login_as_admin_then_logout(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/session").status_code == 401
    response = login(anonymous, ADMIN.upper(), PASSWORD)
    assert response.status_code == 200
    assert response.json() == {
        "username": ADMIN,
        "display_name": "区管理员",
        "role": "district_admin",
        "unit_code": DISTRICT,
        "must_change_password": False,
    }
    assert anonymous.get("/api/v1/session").json()["username"] == ADMIN
    assert anonymous.get("/api/v1/units").status_code == 200
    assert send(anonymous, "DELETE", "/api/v1/session").status_code == 204
    assert anonymous.get("/api/v1/units").status_code == 401


@pytest.mark.parametrize(
    ("username", "password"),
    [(ADMIN, "wrong-password"), ("nobody-here", PASSWORD), (STAFF, PASSWORD)],
)
def test_login_refused(anonymous: TestClient, username: str, password: str) -> None:
    response = login(anonymous, username, password)
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert "登录名或密码不正确" in response.json()["message"]
    assert anonymous.get("/api/v1/units").status_code == 401


def test_login_needs_the_csrf_header(anonymous: TestClient) -> None:
    response = anonymous.post("/api/v1/session", json={"username": ADMIN, "password": PASSWORD})
    assert response.status_code == 403
    assert anonymous.get("/api/v1/units").status_code == 401


def test_login_with_malformed_json(anonymous: TestClient) -> None:
    response = send(anonymous, "POST", "/api/v1/session", content=b'{"username": "x",')
    assert response.status_code == 400
    assert fields_of(response) == ["body"]
    assert response.json()["message"].startswith("请求体不是合法的JSON")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/units"),
        ("POST", "/api/v1/units"),
        ("GET", "/api/v1/accounts"),
        ("GET", "/api/v1/kiosks"),
        ("GET", "/api/v1/catalogue/items"),
        ("POST", "/api/v1/catalogue/publish"),
        ("GET", "/api/v1/settings"),
    ],
)
def test_unauthenticated_requests_get_401_json(
    anonymous: TestClient, method: str, path: str
) -> None:
    response = send(anonymous, method, path, json={})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "not_authenticated", "message": "请先登录"}


def test_a_disabled_admin_loses_the_session(env: Env, admin: TestClient) -> None:
    seed(
        env,
        accounts.create_account,
        "api-admin2",
        "第二管理员",
        "district_admin",
        DISTRICT,
        PASSWORD,
    )
    with TestClient(env.app) as other:
        assert login(other, "api-admin2", PASSWORD).status_code == 200
        assert send(admin, "POST", "/api/v1/accounts/api-admin2/disable").status_code == 200
        assert other.get("/api/v1/units").status_code == 401


# --- units -------------------------------------------------------------------------------


def test_units_add_get_rename_list(admin: TestClient) -> None:
    response = send(
        admin, "POST", "/api/v1/units", json={"code": "500109002000", "name": "东阳街道"}
    )
    assert response.status_code == 201
    assert response.json() | {"updated_at": None} == {
        "code": "500109002000",
        "name": "东阳街道",
        "level": "township",
        "parent": DISTRICT,
        "demo": False,
        "updated_at": None,
    }
    assert admin.get("/api/v1/units/500109002000").json()["name"] == "东阳街道"
    renamed = send(admin, "PATCH", "/api/v1/units/500109002000", json={"name": "东阳街道办事处"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "东阳街道办事处"
    listed = admin.get("/api/v1/units", params={"q": "东阳", "level": "township"}).json()
    assert [u["code"] for u in listed] == ["500109002000"]
    children = admin.get("/api/v1/units", params={"parent": TOWNSHIP}).json()
    assert [u["code"] for u in children] == [VILLAGE]


def test_unit_errors(admin: TestClient) -> None:
    assert admin.get("/api/v1/units/500109999999").status_code == 404
    missing = send(admin, "PATCH", "/api/v1/units/500109999999", json={"name": "无"})
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    orphan = send(admin, "POST", "/api/v1/units", json={"code": "500109098001", "name": "无上级村"})
    assert orphan.status_code == 400
    assert fields_of(orphan) == ["parent"]
    bad_code = send(admin, "POST", "/api/v1/units", json={"code": "5001", "name": "短码"})
    assert bad_code.status_code == 400
    assert fields_of(bad_code) == ["code"]
    duplicate = send(admin, "POST", "/api/v1/units", json={"code": TOWNSHIP, "name": "重复"})
    assert duplicate.status_code == 409
    assert fields_of(duplicate) == ["code"]
    wrong_type = send(admin, "POST", "/api/v1/units", json={"code": "500109003000", "name": 7})
    assert wrong_type.status_code == 400
    assert fields_of(wrong_type) == ["name"]
    missing_field = send(admin, "POST", "/api/v1/units", json={"code": "500109003000"})
    assert fields_of(missing_field) == ["name"]
    assert "缺少必填项" in missing_field.json()["message"]
    bad_limit = admin.get("/api/v1/units", params={"limit": "many"})
    assert bad_limit.status_code == 400
    assert fields_of(bad_limit) == ["limit"]


def test_malformed_json_writes_nothing(env: Env, admin: TestClient) -> None:
    response = send(
        admin,
        "POST",
        "/api/v1/units",
        content=b'{"code": "500109004000", "name": "\xe5\x9d\x8f}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_input"
    assert body["message"].startswith("请求体不是合法的JSON")
    assert body["errors"][0]["field"] == "body"
    empty = send(admin, "POST", "/api/v1/units", content=b"")
    assert empty.status_code == 400
    assert fields_of(empty) == ["body"]
    with env.sessions() as s:
        assert s.get(Unit, "500109004000") is None


def test_import_units_csv(admin: TestClient) -> None:
    csv = (
        "code,name,parent\n500109005000,复兴街道,500109000000\n500109005001,复兴社区,500109005000\n"
    )
    response = send(
        admin,
        "POST",
        "/api/v1/units/import",
        content=csv.encode(),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 201
    assert [u["code"] for u in response.json()] == ["500109005000", "500109005001"]
    again = send(admin, "POST", "/api/v1/units/import", content=csv.encode())
    assert again.status_code == 201
    assert again.json() == []


def test_import_units_csv_with_a_bad_row_imports_nothing(env: Env, admin: TestClient) -> None:
    csv = (
        "区划代码,名称,上级代码\n500109006000,澄江镇,500109000000\n500109006X01,坏行,500109006000\n"
    )
    response = send(admin, "POST", "/api/v1/units/import", content=csv.encode())
    assert response.status_code == 400
    assert fields_of(response) == ["line 3"]
    assert "第3行" in response.json()["message"]
    with env.sessions() as s:
        assert s.get(Unit, "500109006000") is None


def test_import_units_csv_too_big(admin: TestClient) -> None:
    csv = b"code,name,parent\n" + b"500109007000,x,500109000000\n" * 1000
    response = send(admin, "POST", "/api/v1/units/import", content=csv)
    assert response.status_code == 400
    assert fields_of(response) == ["file"]
    assert "文件过大" in response.json()["message"]


# --- accounts ----------------------------------------------------------------------------


def test_accounts_create_list_disable_enable(admin: TestClient) -> None:
    new = {
        "username": "Wang.Fang",
        "display_name": "王芳",
        "role": "village_agent",
        "unit_code": VILLAGE,
        "password": "village-pass-1",
        "phone": "13800000000",
    }
    created = send(admin, "POST", "/api/v1/accounts", json=new)
    assert created.status_code == 201
    assert created.json() | {"updated_at": None} == {
        "username": "wang.fang",
        "display_name": "王芳",
        "role": "village_agent",
        "unit_code": VILLAGE,
        "phone": "13800000000",
        "disabled": False,
        "must_change_password": False,
        "updated_at": None,
    }
    listed = admin.get("/api/v1/accounts", params={"role": "village_agent", "unit": VILLAGE}).json()
    assert [a["username"] for a in listed] == ["wang.fang"]
    assert not {"password", "password_hash"} & {key for a in listed for key in a}
    assert send(admin, "POST", "/api/v1/accounts/wang.fang/disable").json()["disabled"] is True
    assert send(admin, "POST", "/api/v1/accounts/wang.fang/enable").json()["disabled"] is False


def test_account_errors(admin: TestClient) -> None:
    duplicate = send(
        admin,
        "POST",
        "/api/v1/accounts",
        json={
            "username": STAFF,
            "display_name": "重",
            "role": "township_staff",
            "unit_code": TOWNSHIP,
            "password": "long-enough-1",
        },
    )
    assert duplicate.status_code == 409
    bad = send(
        admin,
        "POST",
        "/api/v1/accounts",
        json={
            "username": "li.si",
            "display_name": "李四",
            "role": "village_agent",
            "unit_code": "500109999999",
            "password": "short",
        },
    )
    assert bad.status_code == 400
    assert set(fields_of(bad)) == {"unit_code", "password"}
    assert send(admin, "POST", "/api/v1/accounts/nobody-at-all/enable").status_code == 404
    myself = send(admin, "POST", f"/api/v1/accounts/{ADMIN}/disable")
    assert myself.status_code == 409
    assert admin.get("/api/v1/session").status_code == 200


def test_reset_password_returns_a_temporary_password_once(env: Env, admin: TestClient) -> None:
    seed(
        env,
        accounts.create_account,
        "api-admin3",
        "第三管理员",
        "district_admin",
        DISTRICT,
        PASSWORD,
    )
    response = send(admin, "POST", "/api/v1/accounts/api-admin3/reset-password")
    assert response.status_code == 200
    assert "no-store" in response.headers["cache-control"]
    temporary = response.json()["temporary_password"]
    assert response.json()["username"] == "api-admin3"
    with TestClient(env.app) as other:
        assert login(other, "api-admin3", PASSWORD).status_code == 401
        logged_in = login(other, "api-admin3", temporary)
        assert logged_in.status_code == 200
        assert logged_in.json()["must_change_password"] is True
        blocked = other.get("/api/v1/units")
        assert blocked.status_code == 403
        assert blocked.json()["error"] == "password_change_required"
        change = {"old_password": "not-it-at-all", "new_password": "new-secret-99"}
        wrong_old = send(other, "PUT", "/api/v1/session/password", json=change)
        assert wrong_old.status_code == 400
        assert fields_of(wrong_old) == ["old_password"]
        change["old_password"] = temporary
        changed = send(other, "PUT", "/api/v1/session/password", json=change)
        assert changed.status_code == 200
        assert changed.json()["must_change_password"] is False
        assert other.get("/api/v1/units").status_code == 200
    listed = admin.get("/api/v1/accounts", params={"q": "api-admin3"}).json()
    assert listed[0]["must_change_password"] is False
    assert temporary not in str(listed)


# --- kiosks ------------------------------------------------------------------------------


def test_kiosks_issue_list_revoke(admin: TestClient) -> None:
    issued = send(
        admin, "POST", "/api/v1/kiosks", json={"village_code": VILLAGE, "label": "服务站一号机"}
    )
    assert issued.status_code == 201
    assert "no-store" in issued.headers["cache-control"]
    code = issued.json()["enrolment_code"]
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    kiosk = issued.json()["kiosk"]
    assert (kiosk["village_code"], kiosk["label"], kiosk["status"], kiosk["issued_by"]) == (
        VILLAGE,
        "服务站一号机",
        "pending",
        ADMIN,
    )
    listed = admin.get("/api/v1/kiosks", params={"village": VILLAGE, "status": "pending"}).json()
    assert listed["couch_reachable"] is True
    assert kiosk["id"] in [k["id"] for k in listed["kiosks"]]
    assert code not in str(listed)
    revoked = send(
        admin, "POST", f"/api/v1/kiosks/{kiosk['id']}/revoke", json={"reason": "电脑被盗"}
    )
    assert revoked.status_code == 200
    assert (revoked.json()["status"], revoked.json()["revoked_reason"]) == ("revoked", "电脑被盗")
    again = send(admin, "POST", f"/api/v1/kiosks/{kiosk['id']}/revoke", json={"reason": "再次"})
    assert again.status_code == 409
    statuses = {k["id"]: k["status"] for k in admin.get("/api/v1/kiosks").json()["kiosks"]}
    assert statuses[kiosk["id"]] == "revoked"


def test_kiosk_errors(admin: TestClient) -> None:
    township = send(admin, "POST", "/api/v1/kiosks", json={"village_code": TOWNSHIP})
    assert township.status_code == 400
    assert fields_of(township) == ["village_code"]
    assert (
        send(admin, "POST", "/api/v1/kiosks", json={"village_code": "500109001999"}).status_code
        == 404
    )
    kiosk = send(admin, "POST", "/api/v1/kiosks", json={"village_code": VILLAGE}).json()["kiosk"]
    no_reason = send(admin, "POST", f"/api/v1/kiosks/{kiosk['id']}/revoke", json={"reason": " "})
    assert no_reason.status_code == 400
    assert fields_of(no_reason) == ["reason"]
    unknown = send(admin, "POST", "/api/v1/kiosks/nope/revoke", json={"reason": "x"})
    assert unknown.status_code == 404


# --- catalogue ---------------------------------------------------------------------------


def test_items_create_get_update_retire_restore(admin: TestClient) -> None:
    created = send(admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00001"))
    assert created.status_code == 201
    item = created.json()
    assert (item["code"], item["case_type"], item["promised_limit_days"]) == (
        "APIITEM00001",
        "promised",
        5,
    )
    assert item["updated_by"] == ADMIN
    assert [m["key"] for m in item["materials"]] == ["id_card", "hukou"]
    assert admin.get("/api/v1/catalogue/items/apiitem00001").json()["name"] == item["name"]
    changed = send(
        admin,
        "PUT",
        "/api/v1/catalogue/items/APIITEM00001",
        json=item_body("IGNORED00000", name="城乡居民养老保险待遇领取", promised_limit_days=3),
    )
    assert changed.status_code == 200
    assert (changed.json()["code"], changed.json()["name"]) == (
        "APIITEM00001",
        "城乡居民养老保险待遇领取",
    )
    found = admin.get("/api/v1/catalogue/items", params={"q": "待遇领取"}).json()
    assert [i["code"] for i in found] == ["APIITEM00001"]
    assert (
        send(admin, "POST", "/api/v1/catalogue/items/APIITEM00001/retire").json()["retired"] is True
    )
    assert admin.get("/api/v1/catalogue/items", params={"q": "待遇领取"}).json() == []
    retired = admin.get(
        "/api/v1/catalogue/items", params={"q": "待遇领取", "status": "retired"}
    ).json()
    assert [i["code"] for i in retired] == ["APIITEM00001"]
    assert (
        send(admin, "POST", "/api/v1/catalogue/items/APIITEM00001/restore").json()["retired"]
        is False
    )


def test_item_errors(env: Env, admin: TestClient) -> None:
    assert (
        send(admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00002")).status_code
        == 201
    )
    duplicate = send(admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00002"))
    assert duplicate.status_code == 409
    assert fields_of(duplicate) == ["code"]
    too_long = send(
        admin,
        "POST",
        "/api/v1/catalogue/items",
        json=item_body("APIITEM00003", legal_limit_days=10, promised_limit_days=15),
    )
    assert too_long.status_code == 400
    assert fields_of(too_long) == ["promised_limit_days"]
    assert "不能长于法定时限" in too_long.json()["message"]
    twice = [{"key": "id_card", "name": "居民身份证"}, {"key": "id_card2", "name": "居民身份证"}]
    duplicate_materials = send(
        admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00004", materials=twice)
    )
    assert duplicate_materials.status_code == 400
    assert fields_of(duplicate_materials) == ["materials[1].name"]
    wrong_kind = send(
        admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00005", kind="fun")
    )
    assert wrong_kind.status_code == 400
    assert fields_of(wrong_kind) == ["kind"]
    not_an_object = send(admin, "POST", "/api/v1/catalogue/items", json=["APIITEM00006"])
    assert not_an_object.status_code == 400
    assert fields_of(not_an_object) == ["body"]
    malformed = send(
        admin, "POST", "/api/v1/catalogue/items", content=b'{"code": "APIITEM00007",, }'
    )
    assert malformed.status_code == 400
    assert malformed.json()["message"].startswith("请求体不是合法的JSON")
    assert admin.get("/api/v1/catalogue/items/NOSUCHITEM01").status_code == 404
    assert send(admin, "POST", "/api/v1/catalogue/items/NOSUCHITEM01/retire").status_code == 404
    with env.sessions() as s:
        assert [
            s.get(Item, c) for c in ("APIITEM00003", "APIITEM00004", "APIITEM00005", "APIITEM00007")
        ] == [None] * 4


def upload(
    client: TestClient, code: str, key: str, data: bytes, field: str = "file"
) -> httpx.Response:
    """POST a template as multipart form data."""
    return send(
        client,
        "POST",
        f"/api/v1/catalogue/items/{code}/materials/{key}/templates",
        files={field: ("申请表.pdf", data, "application/pdf")},
    )


def test_template_upload(admin: TestClient) -> None:
    send(admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00008"))
    response = upload(admin, "APIITEM00008", "id_card", b"%PDF-1.4 blank form")
    assert response.status_code == 201
    template = response.json()
    assert (template["material_key"], template["filename"], template["size"]) == (
        "id_card",
        "申请表.pdf",
        19,
    )
    materials = admin.get("/api/v1/catalogue/items/APIITEM00008").json()["materials"]
    assert materials[0]["templates"] == ["申请表.pdf"]


def test_template_upload_errors(admin: TestClient) -> None:
    send(admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00009"))
    just_over = upload(admin, "APIITEM00009", "id_card", b"x" * (TEMPLATE_LIMIT + 1))
    assert just_over.status_code == 400
    assert fields_of(just_over) == ["file"]
    assert "文件过大" in just_over.json()["message"]
    far_over = upload(admin, "APIITEM00009", "id_card", b"x" * (TEMPLATE_LIMIT + 2 * 1024 * 1024))
    assert far_over.status_code == 400
    assert fields_of(far_over) == ["file"]
    wrong_field = upload(admin, "APIITEM00009", "id_card", b"%PDF", field="upload")
    assert fields_of(wrong_field) == ["file"]
    unknown_material = upload(admin, "APIITEM00009", "passport", b"%PDF")
    assert fields_of(unknown_material) == ["material_key"]
    assert (
        admin.get("/api/v1/catalogue/items/APIITEM00009").json()["materials"][0]["templates"] == []
    )


def test_publish_writes_a_version_to_couchdb(env: Env, admin: TestClient) -> None:
    send(admin, "POST", "/api/v1/catalogue/items", json=item_body("APIITEM00010"))
    upload(admin, "APIITEM00010", "id_card", b"%PDF-1.4 published form")
    first = send(admin, "POST", "/api/v1/catalogue/publish")
    assert first.status_code == 201
    version = first.json()["version"]
    assert first.json()["created"] is True
    db = connect(env.couch_url)["catalogue"]
    manifest = db[f"catalogue_manifest:{version:06d}"]
    assert manifest["published_by"] == ADMIN
    assert first.json()["item_count"] == len(manifest["items"])
    doc_id = f"catalogue_item:APIITEM00010:{version:06d}"
    assert doc_id in [entry["doc"] for entry in manifest["items"]]
    doc = db[doc_id]
    assert doc["version"] == version
    assert doc["kind_label"] == "政务"
    assert "id_card/申请表.pdf" in doc["_attachments"]
    assert get_attachment(db, doc_id, "id_card/申请表.pdf") == b"%PDF-1.4 published form"
    again = send(admin, "POST", "/api/v1/catalogue/publish")
    assert again.status_code == 200
    assert again.json() == {
        "version": version,
        "created": False,
        "item_count": first.json()["item_count"],
    }
    versions = admin.get("/api/v1/catalogue/versions").json()
    assert versions[0]["version"] == version
    assert versions[0]["published_by"] == ADMIN


# --- settings ----------------------------------------------------------------------------


def test_settings_calendar_and_sla(env: Env, admin: TestClient) -> None:
    added = send(
        admin,
        "POST",
        "/api/v1/settings/calendar/exceptions",
        json={"day": "2031-05-06", "workday": False, "note": "区级补休"},
    )
    assert added.status_code == 201
    assert added.json() == {"day": "2031-05-06", "workday": False, "note": "区级补休"}
    document = admin.get("/api/v1/settings").json()
    assert {"day": "2031-05-06", "workday": False, "note": "区级补休"} in document["calendar"][
        "exceptions"
    ]
    assert set(document) == {"calendar", "sla", "provisional_years"}
    couch = connect(env.couch_url)["settings"]["settings:district"]
    assert {"day": "2031-05-06", "workday": False, "note": "区级补休"} in couch["calendar"][
        "exceptions"
    ]
    year = send(admin, "PUT", "/api/v1/settings/calendar/years/2031", json={"announced": True})
    assert year.status_code == 200
    assert 2031 in year.json()["calendar"]["announced_years"]
    unyear = send(admin, "PUT", "/api/v1/settings/calendar/years/2031", json={"announced": False})
    assert 2031 not in unyear.json()["calendar"]["announced_years"]
    assert (
        send(admin, "DELETE", "/api/v1/settings/calendar/exceptions/2031-05-06").status_code == 204
    )
    assert (
        send(admin, "DELETE", "/api/v1/settings/calendar/exceptions/2031-05-06").status_code == 404
    )
    sla = send(
        admin,
        "PUT",
        "/api/v1/settings/sla",
        json={"yellow_remaining_days": 3, "yellow_elapsed_ratio": 0.75},
    )
    assert sla.status_code == 200
    assert sla.json() == {"yellow_remaining_days": 3, "yellow_elapsed_ratio": 0.75}
    assert admin.get("/api/v1/settings").json()["sla"] == sla.json()


def test_settings_errors(admin: TestClient) -> None:
    bad_day = send(
        admin, "POST", "/api/v1/settings/calendar/exceptions", json={"day": "31/05/2031"}
    )
    assert bad_day.status_code == 400
    assert fields_of(bad_day) == ["day"]
    send(
        admin,
        "POST",
        "/api/v1/settings/calendar/exceptions",
        json={"day": "2032-01-02", "workday": True},
    )
    twice = send(admin, "POST", "/api/v1/settings/calendar/exceptions", json={"day": "2032-01-02"})
    assert twice.status_code == 409
    covered = send(admin, "PUT", "/api/v1/settings/calendar/years/2024", json={"announced": True})
    assert covered.status_code == 400
    assert fields_of(covered) == ["year"]
    not_a_year = send(
        admin, "PUT", "/api/v1/settings/calendar/years/soon", json={"announced": True}
    )
    assert not_a_year.status_code in (400, 404)
    ratio = send(
        admin,
        "PUT",
        "/api/v1/settings/sla",
        json={"yellow_remaining_days": 2, "yellow_elapsed_ratio": 1.5},
    )
    assert ratio.status_code == 400
    assert fields_of(ratio) == ["yellow_elapsed_ratio"]
    not_bool = send(admin, "PUT", "/api/v1/settings/calendar/years/2033", json={"announced": "yes"})
    assert not_bool.status_code == 400
    assert fields_of(not_bool) == ["announced"]


# --- OpenAPI -----------------------------------------------------------------------------


def test_openapi_schema_lists_the_api(anonymous: TestClient) -> None:
    schema = anonymous.get("/api/v1/schema/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/session",
        "/api/v1/session/password",
        "/api/v1/units",
        "/api/v1/units/import",
        "/api/v1/units/{code}",
        "/api/v1/accounts",
        "/api/v1/accounts/{username}/disable",
        "/api/v1/accounts/{username}/enable",
        "/api/v1/accounts/{username}/reset-password",
        "/api/v1/kiosks",
        "/api/v1/kiosks/{registration}/revoke",
        "/api/v1/catalogue/items",
        "/api/v1/catalogue/items/{code}",
        "/api/v1/catalogue/items/{code}/retire",
        "/api/v1/catalogue/items/{code}/restore",
        "/api/v1/catalogue/items/{code}/materials/{key}/templates",
        "/api/v1/catalogue/publish",
        "/api/v1/catalogue/versions",
        "/api/v1/settings",
        "/api/v1/settings/calendar/exceptions",
        "/api/v1/settings/calendar/exceptions/{day}",
        "/api/v1/settings/calendar/years/{year}",
        "/api/v1/settings/sla",
    ):
        assert path in paths, path
    item_schema = paths["/api/v1/catalogue/items"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    assert {"code", "name", "kind", "materials", "promised_limit_days"} <= set(
        item_schema["properties"]
    )
    assert (
        "multipart/form-data"
        in paths["/api/v1/catalogue/items/{code}/materials/{key}/templates"]["post"]["requestBody"][
            "content"
        ]
    )
    assert "password_hash" not in str(schema["components"])
    assert "$defs" not in str(paths)  # request-body schemas are inlined, with nothing left dangling
