"""Sync, visible: the kiosk's own status document travelling up to the district, and the
background sync's backoff while the township is unreachable.

Reuses the network of test_kiosk (district, township, township node, one kiosk), built afresh
for this module; the tests run in order on one kiosk.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar.testing import TestClient

from sync.couch import connect, couch_errors
from sync.devserver import free_port
from sync.topology import village_database
from tests.integration import test_kiosk as base
from tests.integration.test_kiosk import CODE, REG, Network, form, login, poll, store_of
from village_node.app import create_app
from village_node.settings import load_enrolment, save_enrolment
from village_node.syncing import OFFLINE, status_id

net = base.net  # the same network fixture, built afresh for this module
_servers_alive = base._servers_alive

A = "500109102001"
T = "500109102000"


def _status_at(net: Network, db: str, server: str = "t") -> dict[str, Any] | None:
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    with couch_errors():
        doc = (net.t if server == "t" else net.d)[db].get(status_id(enrolment))
    return dict(doc) if doc is not None else None


def test_enrol_and_log_in(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    done = form(c, "/enrol", township_url=net.endpoint, village=A, code=CODE)
    assert done.headers["location"] == "/login"
    assert login(c).status_code in (302, 303)


def test_the_kiosk_status_travels_up_to_the_district(net: Network) -> None:
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    assert form(net.client, "/sync", back="/catalogue").status_code in (302, 303)
    local = store_of(net).get(status_id(enrolment))
    assert local["_id"] == f"kiosk_status:{A}:{enrolment.instance}"
    assert (local["type"], local["village"], local["township"]) == ("kiosk_status", A, T)
    assert (local["instance"], local["registration"]) == (enrolment.instance, REG)
    assert local["last_success"] and local["last_attempt"] and local["last_error"] == ""
    assert local["waiting"] == 0 and local["catalogue_version"] == 1
    assert local["clock"] and local["app_version"]

    for db, server in ((village_database(A), "t"), ("township", "t"), ("district", "d")):
        doc = poll(lambda db=db, server=server: _status_at(net, db, server), f"status in {db}")
        assert (doc["type"], doc["village"], doc["township"]) == ("kiosk_status", A, T)
        assert (doc["instance"], doc["registration"]) == (enrolment.instance, REG)
        assert doc["last_attempt"] and doc["clock"] and doc["catalogue_version"] == 1
    # Nothing of ours is left to go up: the status document does not count itself.
    assert 'id="waiting">0<' in net.client.get("/catalogue").text
    # A later sync carries the rewritten status (with the outcome of the last sync) all the way up.
    assert form(net.client, "/sync", back="/catalogue").status_code in (302, 303)
    for db, server in ((village_database(A), "t"), ("township", "t"), ("district", "d")):
        poll(
            lambda db=db, server=server: (_status_at(net, db, server) or {}).get("last_success"),
            f"the rewritten status in {db}",
        )


def _point_at(net: Network, couch_url: str) -> None:
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    save_enrolment(net.settings, dataclasses.replace(enrolment, couch_url=couch_url))


def test_offline_backs_off_and_a_returning_link_syncs_at_once(net: Network) -> None:
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    good_url = enrolment.couch_url
    case = {"_id": f"case:{A}:{enrolment.instance}:00000001", "type": "case",
            "schema_version": 1, "village": A, "township": T,
            "origin": {"unit": A, "instance": enrolment.instance}, "counter": 1}  # fmt: skip
    store_of(net).put(case)
    _point_at(net, f"http://127.0.0.1:{free_port()}/")
    try:
        settings = dataclasses.replace(net.settings, sync_interval=600)
        with TestClient(create_app(settings)) as other:
            syncer = other.app.state.kiosk.syncer
            assert syncer.retry_max == 600
            syncer.retry_first = 0.2  # the real first pause is 15 s
            login(other)
            form(other, "/sync", back="/catalogue")
            assert syncer.state().failures == 1
            poll(lambda: syncer.state().failures >= 3, "three failed background syncs")
            state = syncer.state()
            assert state.error_kind == OFFLINE and state.online is False
            assert state.retry_delay >= 0.8  # 0.2 → 0.4 → 0.8: doubling
            assert syncer.probe() is False

            # A long pause now: the header says offline, with the seconds to the retry.
            syncer.retry_first = 300  # the next background failure plans a long pause
            poll(lambda: syncer.state().retry_delay == 600, "a pause capped at the interval")
            state = syncer.state()
            assert state.failures >= 4 and state.retry_delay == 600  # capped at the interval
            assert 150 <= state.retry_in() <= 600
            page = other.get("/catalogue").text
            assert 'id="link">离线' in page and 'id="retry">' in page and "秒后重试" in page
            assert 'id="waiting">1<' in page

            # The link returns: the probe notices and the sync runs without waiting 5 min.
            _point_at(net, good_url)
            assert syncer.probe() is True
            poll(lambda: syncer.state().online is True, "a sync once the link is back")
            state = syncer.state()
            assert state.error_kind == "" and state.failures == 0 and state.retry_at == 0
            assert syncer.waiting() == 0
            page = other.get("/catalogue").text
            assert 'id="link">在线' in page and 'id="waiting">0<' in page
            assert 'id="retry"' not in page
    finally:
        _point_at(net, good_url)
    assert net.has(village_database(A), case["_id"])


def test_a_refused_kiosk_is_not_retried_automatically(net: Network) -> None:
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    good_url = enrolment.couch_url
    wrong = dataclasses.replace(enrolment, password="not-the-password")
    save_enrolment(net.settings, wrong)
    try:
        syncer = net.client.app.state.kiosk.syncer
        form(net.client, "/sync", back="/catalogue")
        assert syncer.state().revoked and syncer.state().retry_at == 0
        auto = type(syncer)(dataclasses.replace(net.settings, sync_interval=600), syncer.store)
        assert auto.next_wait() is None  # no automatic retry until 同步 or re-enrolment
    finally:
        save_enrolment(net.settings, dataclasses.replace(wrong, password=enrolment.password))
    assert form(net.client, "/sync", back="/catalogue").status_code in (302, 303)
    assert not syncer.state().revoked and good_url == enrolment.couch_url
    with couch_errors():
        assert connect(net.township.url)[village_database(A)].get(status_id(enrolment))
