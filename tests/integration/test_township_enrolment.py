"""Kiosk enrolment at the township node, on a real district and township pouchdb-server.

The district's ``kiosk_registration`` documents (hashed one-time codes) replicate into the
township's ``directory``; the township app checks a code against them and answers CouchDB
credentials that open that village's database and no other one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar.testing import TestClient

from sync.couch import connect, couch_errors, get_document, save_document
from sync.devserver import PouchServer
from sync.errors import CouchRejected
from sync.remote import RemoteDatabase
from sync.topology import setup_district
from tests.servers import join_district
from tests.waiting import poll
from township.app import create_app
from township.settings import TownshipSettings

DISTRICT = "500109000000"
T = "500109102000"  # the township under test
A = "500109102001"  # its villages
B = "500109102002"
U = "500109103000"  # another township, with village C
C = "500109103001"

ENROL = "/api/v1/kiosk/enrol"
_hasher = PasswordHasher(time_cost=1, memory_cost=8192)  # quick to hash; verify reads the params


def _unit(code: str, level: str, township: str | None) -> dict[str, Any]:
    village = code if level == "village" else None
    return {"_id": f"unit:{code}", "type": "unit", "code": code, "name": f"单位{code[-3:]}",
            "level": level, "township": township, "village": village}  # fmt: skip


def registration(reg: str, village: str, code: str, *, days: int = 14) -> dict[str, Any]:
    """A ``kiosk_registration`` document as the district publishes it (central's shape)."""
    issued = datetime.now(UTC) - timedelta(days=1)
    return {
        "_id": f"kiosk_registration:{reg}",
        "type": "kiosk_registration",
        "registration": reg,
        "label": "测试终端",
        "code_hash": _hasher.hash(code),
        "issued_at": issued.isoformat(timespec="seconds"),
        "expires_at": (issued + timedelta(days=days)).isoformat(timespec="seconds"),
        "revoked": False,
        "revoked_at": None,
        "revoked_reason": "",
        "township": village[:9] + "000",
        "village": village,
    }


CODES = {
    f"{A}-0000a001": "ABCD-EFGH-JK23",
    f"{A}-0000a002": "MNPQ-RSTU-VW45",  # revoked later
    f"{A}-0000a003": "XYZ2-3456-789A",  # expired
    f"{B}-0000b001": "BBBB-CCCC-DDDD",
    f"{C}-0000c001": "CCCC-DDDD-EEEE",  # another township's village
}
EXPIRED = f"{A}-0000a003"


class Network:
    """The two servers, set up, and the district's directory database."""

    def __init__(self, district: PouchServer, township: PouchServer) -> None:
        self.district = district
        self.township = township
        self.d = connect(district.url)
        self.t = connect(township.url)

    def publish(self, doc: dict[str, Any]) -> None:
        """Write a directory document at the district and wait until the township holds it."""
        current = get_document(self.d["directory"], doc["_id"])
        if current is not None:
            doc = {**doc, "_rev": current["_rev"]}
        save_document(self.d["directory"], doc)
        want = {k: v for k, v in doc.items() if not k.startswith("_")}

        def arrived() -> bool:
            held = get_document(self.t["directory"], doc["_id"]) or {}
            return all(held.get(k) == v for k, v in want.items())

        poll(arrived, f"{doc['_id']} in the township's directory")


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:
    """A district and a township server, set up once for the module."""
    with PouchServer() as district, PouchServer() as township:
        network = Network(district, township)
        setup_district(district.url)
        units = [
            _unit(DISTRICT, "district", None),
            _unit(T, "township", T),
            _unit(A, "village", T),
            _unit(B, "village", T),
            _unit(U, "township", U),
            _unit(C, "village", U),
        ]
        for doc in units:
            save_document(network.d["directory"], doc)
        for reg, code in CODES.items():
            days = -5 if reg == EXPIRED else 14
            save_document(network.d["directory"], registration(reg, reg[:12], code, days=days))
        assert join_district(district, township.url, T).villages == [A, B]
        yield network


def _settings(net: Network, tmp_path: Path, **extra: Any) -> TownshipSettings:
    return TownshipSettings(
        code=T,
        couchdb_url=net.township.url,
        database_url=f"sqlite:///{tmp_path / 'township.sqlite'}",
        **extra,
    )


@pytest.fixture
def client(net: Network, tmp_path: Path) -> Iterator[TestClient[Any]]:
    """The township app of ``T`` on the township server."""
    with TestClient(create_app(_settings(net, tmp_path))) as test_client:
        yield test_client


def _kiosk_url(net: Network, body: dict[str, Any]) -> str:
    return f"http://{body['username']}:{body['password']}@127.0.0.1:{net.township.port}/"


def _opens(url: str, database: str) -> bool:
    """True if the credentials in ``url`` read ``database`` (couchdb-python GET)."""
    try:
        with couch_errors():
            list(connect(url)[database].view("_all_docs", limit=1))
    except CouchRejected:
        return False
    return True


def test_healthz(client: TestClient[Any]) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "township": T}


def test_a_new_registration_enrols_once_it_has_replicated(
    net: Network, client: TestClient[Any]
) -> None:
    reg, code = f"{A}-0000a0ff", "FFFF-GGGG-HHHH"
    wrong = client.post(ENROL, json={"village": A, "code": code, "instance": "k1aa01"})
    assert wrong.status_code == 403  # not in the township's directory yet: a wrong code
    net.publish(registration(reg, A, code))

    answer = client.post(ENROL, json={"village": A, "code": code.lower(), "instance": "k1aa01"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["registration"] == reg


def test_enrolment_gives_credentials_for_the_village_database_only(
    net: Network, client: TestClient[Any]
) -> None:
    reg, code = f"{A}-0000a001", CODES[f"{A}-0000a001"]
    wrong = client.post(ENROL, json={"village": A, "code": "ABCD-EFGH-JK24", "instance": "k7f3a9"})
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "wrong_code"
    assert "启用码不正确" in wrong.json()["message"]

    answer = client.post(ENROL, json={"village": A, "code": code, "instance": "k7f3a9"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["database"] == f"village_{A}"
    assert body["couch_url"] == net.township.base_url
    assert (body["registration"], body["instance"]) == (reg, "k7f3a9")
    assert (body["village"], body["township"]) == (A, T)
    assert body["username"] == f"kiosk-{reg}-k7f3a9"
    kiosk = _kiosk_url(net, body)
    assert _opens(kiosk, f"village_{A}")
    assert not _opens(kiosk, f"village_{B}")
    assert not _opens(kiosk, "township")
    assert RemoteDatabase(kiosk, f"village_{A}").info()

    enrolment = get_document(net.t["township"], f"enrolment:{reg}")
    assert enrolment is not None
    assert (enrolment["type"], enrolment["instance"], enrolment["village"]) == (
        "enrolment",
        "k7f3a9",
        A,
    )
    poll(lambda: get_document(net.d["district"], f"enrolment:{reg}"), "enrolment at district")

    # The same PC again: a fresh password, the old one stops working.
    again = client.post(ENROL, json={"village": A, "code": code, "instance": "k7f3a9"})
    assert again.status_code == 200, again.text
    assert again.json()["username"] == body["username"]
    assert again.json()["password"] != body["password"]
    assert _opens(_kiosk_url(net, again.json()), f"village_{A}")
    assert not _opens(kiosk, f"village_{A}")

    # Another PC with the same registration: refused.
    other = client.post(ENROL, json={"village": A, "code": code, "instance": "k9zz01"})
    assert other.status_code == 409
    assert "另一台电脑" in other.json()["message"]


def test_a_revoked_registration_is_refused(net: Network, client: TestClient[Any]) -> None:
    reg, code = f"{A}-0000a002", CODES[f"{A}-0000a002"]
    first = client.post(ENROL, json={"village": A, "code": code, "instance": "r3v0k3"})
    assert first.status_code == 200, first.text

    doc = get_document(net.d["directory"], f"kiosk_registration:{reg}")
    assert doc is not None
    net.publish({**doc, "revoked": True, "revoked_reason": "电脑丢失"})

    answer = client.post(ENROL, json={"village": A, "code": code, "instance": "r3v0k3"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "revoked"
    assert answer.json()["message"].startswith("该终端已被吊销")


def test_an_expired_code_is_refused(client: TestClient[Any]) -> None:
    answer = client.post(ENROL, json={"village": A, "code": CODES[EXPIRED], "instance": "exp001"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "expired"
    assert "过期" in answer.json()["message"]


def test_villages_not_of_this_township_are_not_found(client: TestClient[Any]) -> None:
    code = CODES[f"{C}-0000c001"]
    other = client.post(ENROL, json={"village": C, "code": code, "instance": "k1cc01"})
    assert other.status_code == 404
    assert "不属于本镇街" in other.json()["message"]
    unknown = client.post(ENROL, json={"village": T[:9] + "099", "code": code, "instance": "k1"})
    assert unknown.status_code == 400  # instance too short: checked before anything else
    unknown = client.post(
        ENROL, json={"village": T[:9] + "099", "code": code, "instance": "k1cc01"}
    )
    assert unknown.status_code == 404
    assert "目录中没有" in unknown.json()["message"]


def test_malformed_requests_get_a_chinese_400(client: TestClient[Any]) -> None:
    headers = {"content-type": "application/json"}
    for body in (b"{not json", b"[1, 2]", b'{"village": "x"}', b""):
        answer = client.post(ENROL, content=body, headers=headers)
        assert answer.status_code == 400, body
        assert answer.json()["error"] == "malformed_request"
        assert "请求格式有误" in answer.json()["message"]
    answer = client.post(ENROL, json={"village": T, "code": "123", "instance": "UPPER"})
    assert answer.status_code == 400
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"village", "code", "instance"}


def test_too_many_wrong_codes_lock_the_village_for_a_while(net: Network, tmp_path: Path) -> None:
    settings = _settings(net, tmp_path, enrol_max_failures=3)
    with TestClient(create_app(settings)) as client:
        for _ in range(3):
            wrong = client.post(
                ENROL, json={"village": B, "code": "2222-3333-4444", "instance": "kb0001"}
            )
            assert wrong.status_code == 403
        code = CODES[f"{B}-0000b001"]
        locked = client.post(ENROL, json={"village": B, "code": code, "instance": "kb0001"})
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert "次数过多" in locked.json()["message"]
        # Another village is not affected.
        assert (
            client.post(
                ENROL, json={"village": A, "code": "2222-3333-4444", "instance": "ka0001"}
            ).status_code
            == 403
        )


def test_a_node_not_set_up_says_so(tmp_path: Path) -> None:
    with PouchServer() as bare:
        settings = TownshipSettings(
            code=T, couchdb_url=bare.url, database_url=f"sqlite:///{tmp_path / 't.sqlite'}"
        )
        with TestClient(create_app(settings)) as client:
            code = CODES[f"{A}-0000a001"]
            answer = client.post(ENROL, json={"village": A, "code": code, "instance": "k7f3a9"})
    assert answer.status_code == 503
    assert "sanji township setup" in answer.json()["message"]
