"""Video call signalling at the township node, over a real township pouchdb-server.

A kiosk's backend places a call with its CouchDB credentials (checked by the node's own
``GET /_session``) and gets a short-lived token for its side; the call's WebSocket admits only
such tokens and relays signalling between the two sides of that call, never across calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from sync.couch import connect, save_document
from sync.devserver import PouchServer
from township.app import create_app
from township.settings import TownshipSettings
from township.video import RING_LIMIT, Side, VideoDesk

T = "500109102000"
A = "500109102001"  # a village of T
C = "500109103001"  # a village of another township
CASE_A = f"case:{A}:k7f3a9:00000001"
CASE_A2 = f"case:{A}:k7f3a9:00000005"
CALLS = "/api/v1/video/calls"
KIOSK_A = ("kiosk-a", "secret-a")
KIOSK_C = ("kiosk-c", "secret-c")


def _user(name: str, password: str, roles: list[str]) -> dict[str, Any]:
    return {"_id": f"org.couchdb.user:{name}", "name": name, "password": password,
            "roles": roles, "type": "user"}  # fmt: skip


@pytest.fixture(scope="module")
def couch() -> Iterator[PouchServer]:
    """A township server with two kiosk users: one of its village, one of another township."""
    with PouchServer() as server:
        admin = connect(server.url)
        for name in ("_users", "township", "directory"):
            if name not in admin:
                admin.create(name)
        save_document(admin["_users"], _user(*KIOSK_A, [f"village:{A}"]))
        save_document(admin["_users"], _user(*KIOSK_C, [f"village:{C}"]))
        yield server


@pytest.fixture
def client(couch: PouchServer, tmp_path: Path) -> Iterator[TestClient[Any]]:
    settings = TownshipSettings(
        code=T,
        couchdb_url=couch.url,
        database_url=f"sqlite:///{tmp_path / 'township.sqlite'}",
        project_every=0,
        video_token_ttl=30,
        ice_servers=({"urls": "stun:stun.example.org:3478"},),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _call(client: TestClient[Any], case_id: str = CASE_A, auth: tuple[str, str] = KIOSK_A) -> Any:
    return client.post(CALLS, json={"case_id": case_id, "case_number": "N-1", "item_name": "调解"},
                       auth=auth)  # fmt: skip


def _desk(client: TestClient[Any]) -> VideoDesk:
    desk: VideoDesk = client.app.state.video
    return desk


def test_a_kiosk_of_the_township_gets_a_token_for_its_call(client: TestClient[Any]) -> None:
    answer = _call(client)
    assert answer.status_code == 201, answer.text
    ticket = answer.json()
    assert ticket["state"] == "waiting" and ticket["staff_available"] == 0
    assert ticket["ws_path"] == f"/video/ws/{ticket['call_id']}"
    assert ticket["ice_servers"] == [{"urls": "stun:stun.example.org:3478"}]
    call = _desk(client).get(ticket["call_id"])
    assert (call.village, call.case_id) == (A, CASE_A)
    assert _desk(client).check_token(ticket["token"], call.id) is Side.KIOSK


def test_other_kiosks_and_wrong_credentials_are_refused(client: TestClient[Any]) -> None:
    assert _call(client, auth=KIOSK_C).status_code == 403  # a village of another township
    assert _call(client, auth=(KIOSK_A[0], "wrong")).status_code == 401
    assert client.post(CALLS, json={"case_id": CASE_A}).status_code == 401
    other_case = f"case:{C}:k7f3a9:00000001"
    assert _call(client, case_id=other_case).status_code == 400  # not a case of its village
    assert _desk(client).calls == {}


def test_wrong_expired_or_foreign_tokens_cannot_join(client: TestClient[Any]) -> None:
    first = _call(client).json()
    second = _call(client, CASE_A2).json()
    desk = _desk(client)
    expired = desk.token(first["call_id"], Side.KIOSK, now=1_000_000.0)
    forged = first["token"][:-4] + "AAAA"
    for call_id, token in [
        (first["call_id"], expired),
        (first["call_id"], forged),
        (first["call_id"], second["token"]),  # a token of another call
        (first["call_id"], ""),
        ("no-such-call", first["token"]),
    ]:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect(f"/video/ws/{call_id}?token={token}") as socket:
                socket.receive_json()


def test_signalling_stays_within_its_call(client: TestClient[Any]) -> None:
    desk = _desk(client)
    one, two = _call(client).json(), _call(client, CASE_A2).json()
    desk.accept(one["call_id"], "jg.li", "李")
    desk.accept(two["call_id"], "jg.wang", "王")
    staff_one = desk.token(one["call_id"], Side.STAFF)
    staff_two = desk.token(two["call_id"], Side.STAFF)

    def ws(ticket: dict[str, Any], token: str) -> Any:
        return client.websocket_connect(f"/video/ws/{ticket['call_id']}?token={token}")

    with (
        ws(one, one["token"]) as kiosk_one,
        ws(two, two["token"]) as kiosk_two,
        ws(one, staff_one) as desk_one,
        ws(two, staff_two) as desk_two,
    ):
        for socket in (kiosk_one, kiosk_two):
            assert socket.receive_json()["state"] == "connecting"
            assert socket.receive_json() == {"type": "ready"}
        for socket in (desk_one, desk_two):
            assert socket.receive_json()["state"] == "connecting"
        kiosk_one.send_json({"type": "offer", "sdp": "sdp-of-call-one", "extra": "dropped"})
        kiosk_two.send_json({"type": "offer", "sdp": "sdp-of-call-two"})
        assert desk_one.receive_json() == {"type": "offer", "sdp": "sdp-of-call-one"}
        assert desk_two.receive_json() == {"type": "offer", "sdp": "sdp-of-call-two"}
        desk_one.send_json({"type": "candidate", "candidate": {"candidate": "c1"}})
        assert kiosk_one.receive_json() == {"type": "candidate", "candidate": {"candidate": "c1"}}
        desk_one.send_json({"type": "connected"})
        assert kiosk_one.receive_json()["state"] == "in_call"
        assert desk_one.receive_json()["state"] == "in_call"
        # nothing of call one reached call two: its next message is its own
        desk_two.send_json({"type": "answer", "sdp": "answer-two"})
        assert kiosk_two.receive_json() == {"type": "answer", "sdp": "answer-two"}

        kiosk_two.send_json({"type": "chat", "text": "hello"})  # anything else is refused
        assert kiosk_two.receive_json()["type"] == "error"
        with pytest.raises(WebSocketDisconnect):
            kiosk_two.receive_json()

        kiosk_one.send_json({"type": "hangup"})
        assert desk_one.receive_json()["state"] == "ended"
    assert desk.get(one["call_id"]).state.value == "ended"
    assert desk.get(two["call_id"]).state.value == "connecting"


def test_a_kiosk_hanging_up_unanswered_fails_the_call(client: TestClient[Any]) -> None:
    ticket = _call(client).json()
    with client.websocket_connect(f"/video/ws/{ticket['call_id']}?token={ticket['token']}") as s:
        assert s.receive_json()["state"] == "waiting"
        s.send_json({"type": "offer", "sdp": "too early"})  # nobody to relay to: dropped
        s.send_json({"type": "hangup"})
        assert s.receive_json()["state"] == "failed"
    assert _desk(client).waiting() == []


def test_a_call_left_ringing_is_dropped_after_the_ring_limit(client: TestClient[Any]) -> None:
    ticket = _call(client).json()
    desk = _desk(client)
    call = desk.get(ticket["call_id"])
    assert [c.id for c in desk.waiting()] == [call.id]
    call.created -= RING_LIMIT + 1  # the kiosk's page closed long ago without hanging up
    assert desk.waiting() == []
    assert call.state.value == "failed" and call.ended is not None
