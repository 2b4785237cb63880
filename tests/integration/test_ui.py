"""The district UI over HTTP: login rules, forced password change, validation, English."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.services import accounts, hierarchy
from central.settings import Settings
from tests.conftest import CouchUnderTest


@pytest.fixture
def client(
    database_url: str, sessions: sessionmaker[Session], couch_server: CouchUnderTest
) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with sessions() as session:
        hierarchy.add_unit(session, "500109000000", "北碚区")
        hierarchy.add_unit(session, "500109110000", "静观镇")
        accounts.create_account(
            session, "admin", "管理员", "district_admin", "500109000000", "admin-pass-1"
        )
        accounts.create_account(
            session, "other", "另一位管理员", "district_admin", "500109000000", "other-pass-1"
        )
        accounts.create_account(
            session, "jg.li", "李", "township_staff", "500109110000", "staff-pass-1"
        )
    app = create_app(Settings(database_url=database_url, couchdb_url=couch_server.url))
    with TestClient(app) as client:
        client.get("/login")
        yield client


def post(client: TestClient, path: str, data: dict[str, str]):  # type: ignore[no-untyped-def,type-arg]
    """A form post carrying the CSRF token."""
    return client.post(
        path, data={**data, "_csrf_token": client.cookies["sanji_csrf"]}, follow_redirects=False
    )


def login(client: TestClient, username: str, password: str):  # type: ignore[no-untyped-def,type-arg]
    return post(client, "/login", {"username": username, "password": password, "next": "/"})


def test_pages_need_an_administrator(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.get("/catalogue", follow_redirects=False)
    assert response.status_code in (302, 303) and response.headers["location"].startswith("/login")
    failed = login(client, "jg.li", "staff-pass-1")
    assert failed.status_code == 400 and "登录名或密码不正确" in failed.text
    assert login(client, "admin", "wrong-password").status_code == 400
    assert login(client, "admin", "admin-pass-1").headers["location"] == "/"
    assert client.get("/catalogue").status_code == 200


def test_form_posts_without_csrf_token_are_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    login(client, "admin", "admin-pass-1")
    response = client.post("/units", data={"code": "500109110299", "name": "x"})
    assert response.status_code == 403
    assert "500109110299" not in client.get("/units").text


def test_a_reset_password_must_be_changed_first(client: TestClient) -> None:  # type: ignore[type-arg]
    login(client, "admin", "admin-pass-1")
    reset = post(client, "/accounts/other/reset-password", {})
    assert reset.status_code in (302, 303)
    notice = client.get("/accounts").text
    temporary = notice.split("的临时密码: ")[1].split(" ")[0]
    post(client, "/logout", {})

    client.get("/login")
    login(client, "other", temporary)
    assert client.get("/catalogue", follow_redirects=False).headers["location"] == "/password"
    mismatch = post(
        client,
        "/password",
        {"old_password": temporary, "new_password": "new-pass-123", "new_password_again": "x"},
    )
    assert mismatch.status_code == 400 and "两次输入的新密码不一致" in mismatch.text
    short = post(
        client,
        "/password",
        {"old_password": temporary, "new_password": "short", "new_password_again": "short"},
    )
    assert short.status_code == 400 and "密码至少8位" in short.text
    done = post(
        client,
        "/password",
        {
            "old_password": temporary,
            "new_password": "new-pass-123",
            "new_password_again": "new-pass-123",
        },
    )
    assert done.headers["location"] == "/"
    assert client.get("/catalogue").status_code == 200


def test_bad_unit_and_item_input_names_the_field(client: TestClient) -> None:  # type: ignore[type-arg]
    login(client, "admin", "admin-pass-1")
    bad_code = post(client, "/units", {"code": "50010911020", "name": "短了一位"})
    assert bad_code.status_code == 400 and "区划代码应为12位数字" in bad_code.text
    duplicate = post(client, "/units", {"code": "500109110000", "name": "重复"})
    assert duplicate.status_code == 400 and "已存在" in duplicate.text
    item = {
        "code": "500109ZW0100",
        "name": "测试事项",
        "kind": "government",
        "handling_level": "township",
        "department": "区民政局",
        "item_type": "20",
        "case_type": "promised",
        "modes": "agency",
        "service_objects": "1",
        "legal_limit_days": "10",
        "promised_limit_days": "5",
        "m-0-name": "身份证",
        "m-0-required": "1",
        "m-1-name": "身份证",
        "m-1-required": "1",
    }
    twice = post(client, "/catalogue/new", item)
    assert twice.status_code == 400 and "材料重复: 身份证" in twice.text
    assert client.get("/catalogue/500109ZW0100").status_code == 404
    not_number = post(
        client, "/catalogue/new", {**item, "m-1-name": "户口簿", "legal_limit_days": "十"}
    )
    assert not_number.status_code == 400 and "应为整数" in not_number.text
    created = post(client, "/catalogue/new", {**item, "m-1-name": "户口簿"})
    assert created.headers["location"] == "/catalogue/500109ZW0100"


def test_english_is_available(client: TestClient) -> None:  # type: ignore[type-arg]
    login(client, "admin", "admin-pass-1")
    assert "事项目录" in client.get("/").text
    client.get("/lang/en?back=/")
    page = client.get("/catalogue").text
    assert "Catalogue" in page and "Publish catalogue" in page


def test_oversized_templates_are_refused_in_chinese(client: TestClient) -> None:  # type: ignore[type-arg]
    login(client, "admin", "admin-pass-1")
    item = {
        "code": "500109ZW0101",
        "name": "模板测试事项",
        "kind": "government",
        "handling_level": "township",
        "department": "区民政局",
        "modes": "agency",
        "service_objects": "1",
        "promised_limit_days": "5",
        "m-0-name": "申请表",
        "m-0-key": "form",
        "m-0-required": "1",
    }
    assert post(client, "/catalogue/new", item).status_code in (302, 303)
    token = client.cookies["sanji_csrf"]
    limit = 5 * 1024 * 1024

    def upload(size: int):  # type: ignore[no-untyped-def]
        return client.post(
            "/catalogue/500109ZW0101/templates",
            data={"material_key": "form", "_csrf_token": token},
            files={"file": ("申请表.pdf", b"%PDF" + b"0" * (size - 4), "application/pdf")},
        )

    over_limit = upload(limit + 1)
    assert "文件过大" in over_limit.text
    far_over = upload(limit + 2 * 1024 * 1024)
    assert far_over.status_code == 413 and "上传的文件过大" in far_over.text
    fine = upload(1024)
    assert "已上传模板 申请表.pdf" in fine.text
    assert fine.text.count("application/pdf") == 1
