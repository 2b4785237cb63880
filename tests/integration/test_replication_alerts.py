"""Issue 8's alert "replications failing", on real parts: a district and a township
pouchdb-server set up by ``sync.topology``, the real township node served by uvicorn, the
district's SQL on SQLite and PostgreSQL.

Kiosks: a projected ``kiosk_status`` whose previous attempt failed with an error is *failing*
(an ``offline`` or ``revoked`` outcome is over once the document arrives). Township nodes:
``GET /api/v1/replications`` on the node (401 without the district's key) reports its jobs, a
healthy set-up first, then a job whose source is unreachable and the jobs of a village added
after the set-up (missing); the district's poll stores reachable, failing and unreachable nodes,
the dashboard names them and the fleet page lists them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import uvicorn
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.db import make_engine, make_sessionmaker, migrate
from central.db.models import NodeCheck, TownshipNode, Unit
from central.services import accounts, hierarchy, outbox
from central.services.alerts import alerts
from central.services.fleet import STATES, FleetFilter, fleet
from central.services.node_health import check_nodes, node_health, unchecked_nodes
from central.services.nodes import register_node
from central.settings import Settings
from sync.couch import connect, couch_errors
from sync.devserver import PouchServer, free_port
from sync.memory import MemoryDatabase
from sync.topology import setup_district
from tests.integration.test_district_supervision import (
    NOW,
    _enrolment,
    _project,
    _status,
    _units,
)
from tests.integration.test_projection import OTHER_VILLAGE, VILLAGE
from tests.servers import join_district, serve
from tests.waiting import poll
from township import db as township_db
from township.app import create_app as create_township_app
from township.settings import TownshipSettings

DISTRICT = "500109000000"
T = "500109102000"  # the township whose node runs
A = "500109102001"  # its village at set-up time
A2 = "500109102002"  # a village added after the set-up: its jobs are missing
U = "500109103000"  # a township whose node nobody serves
V = "500109104000"  # a township registered with a key the node does not know
BROKEN = "broken-source"


@dataclass
class Network:
    """The two servers, the district's SQL (SQLite) and the township node."""

    district: PouchServer
    township: PouchServer
    sessions: sessionmaker[Session]
    node_settings: TownshipSettings
    key: str
    node_url: str = ""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = field(default_factory=list)

    def serve_node(self, cache: bool = True) -> str:
        """A fresh node process for the township (its own answer cache; none if not ``cache``)."""
        app = create_township_app(self.node_settings)
        if not cache:
            app.state.replications_cache_seconds = 0.0
        server, thread, url = serve(app)
        self.servers.append((server, thread))
        return url

    def break_replications(self) -> None:
        """A job whose source nobody serves, and a village whose jobs were never written."""
        replicator = connect(self.township.url)["_replicator"]
        with couch_errors():
            if replicator.get(BROKEN) is None:
                replicator.save({
                    "_id": BROKEN, "source": f"http://u:secret@127.0.0.1:{free_port()}/nowhere",
                    "target": self.township.url + "township", "continuous": True,
                })  # fmt: skip
        with self.sessions() as session:
            if session.get(Unit, A2) is None:
                hierarchy.add_unit(session, A2, "新村")
        outbox.flush(self.sessions, lambda: connect(self.district.url))
        directory = connect(self.township.url)["directory"]
        poll(lambda: directory.get(f"unit:{A2}") is not None, "the new village at the township")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with PouchServer() as district, PouchServer() as township:
        setup_district(district.url)
        database_url = f"sqlite:///{tmp_path_factory.mktemp('district') / 'district.sqlite'}"
        migrate(database_url)
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            for code, name in ((DISTRICT, "北碚区"), (T, "澄江镇"), (A, "示例村")):
                hierarchy.add_unit(session, code, name)
            key = register_node(session, T, "http://127.0.0.1:1")
        assert key
        outbox.flush(sessions, lambda: connect(district.url))
        assert join_district(district, township.url, T).villages == [A]
        directory = connect(township.url)["directory"]
        poll(lambda: directory.get(f"township_node:{T}") is not None, "the node's key document")

        township_url = f"sqlite:///{tmp_path_factory.mktemp('township') / 'township.sqlite'}"
        township_db.migrate(township_url)
        node_settings = TownshipSettings(T, township.url, database_url=township_url,
                                         project_every=0)  # fmt: skip
        network = Network(district, township, sessions, node_settings, key)
        try:
            network.node_url = network.serve_node(cache=False)
            with sessions() as session:  # where the node really listens (the key stays)
                assert register_node(session, T, network.node_url) is None
            yield network
        finally:
            for server, thread in network.servers:
                server.should_exit = True
                thread.join(10)
            engine.dispose()
        district.check_alive()
        township.check_alive()


def _get(url: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.get(url + "/api/v1/replications", headers=headers, timeout=30.0)


def test_the_node_reports_its_replications_to_the_district_only(net: Network) -> None:
    assert _get(net.node_url, None).status_code == 401
    assert _get(net.node_url, "not-the-key").status_code == 401

    healthy = _get(net.node_url, net.key)
    assert healthy.status_code == 200
    body = healthy.json()
    assert body["township"] == T
    checked_at = datetime.fromisoformat(body["checked_at"].replace("Z", "+00:00"))
    assert checked_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - checked_at) < timedelta(minutes=1)
    jobs = {job["id"]: job for job in body["jobs"]}
    assert len(jobs) == 5 + 5  # the township's five, five for its village
    up = jobs[f"sanji-{T}-up"]
    assert up["source"] == f"127.0.0.1:{net.township.port}/township"
    assert up["target"] == f"127.0.0.1:{net.district.port}/district"
    assert not any(job["failing"] for job in jobs.values()), jobs
    assert all(job["lag"] is None or isinstance(job["lag"], int) for job in jobs.values())
    assert net.township.password not in healthy.text and "@" not in healthy.text

    # The district's poll finds the node healthy.
    assert check_nodes(net.sessions) == 1
    with net.sessions() as session:
        first = session.get(NodeCheck, T)
        assert first is not None and first.reachable and first.failing_jobs == 0
        assert first.jobs_total == 10 and first.last_ok_at is not None
        ok_at = first.last_ok_at

    net.break_replications()
    failing = _get(net.node_url, net.key)
    assert failing.status_code == 200
    jobs = {job["id"]: job for job in failing.json()["jobs"]}
    assert jobs[BROKEN]["failing"] and "nowhere" in jobs[BROKEN]["error"]
    assert jobs[BROKEN]["source"].endswith("/nowhere")
    assert "secret" not in failing.text and net.township.password not in failing.text
    missing = {i for i, job in jobs.items() if job["state"] == "missing"}
    assert missing == {f"sanji-{A2}-{s}" for s in
                       ("up", "down", "catalogue", "settings", "directory")}  # fmt: skip
    assert all(jobs[i]["failing"] and "sanji township setup" in jobs[i]["error"] for i in missing)
    assert not jobs[f"sanji-{T}-up"]["failing"]

    check_nodes(net.sessions)
    with net.sessions() as session:
        second = session.get(NodeCheck, T)
        assert second is not None and second.reachable
        assert (second.failing_jobs, second.jobs_total) == (6, 16)
        assert f"{BROKEN}: " in second.detail and f"sanji-{A2}-up: " in second.detail
        assert second.last_ok_at == ok_at  # kept from the last healthy check


def test_the_node_keeps_its_answer_for_a_minute(net: Network) -> None:
    url = net.serve_node()
    first = _get(url, net.key).json()
    assert _get(url, "wrong").status_code == 401  # the cache never skips the key check
    assert _get(url, net.key).json() == first


def _nodes(sessions: sessionmaker[Session], net: Network) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with sessions() as session:
        for code, name in ((DISTRICT, "北碚区"), (T, "澄江镇"), (U, "天府镇"), (V, "施家梁镇")):
            parent = None if code == DISTRICT else DISTRICT
            session.add(Unit(code=code, name=name, level="district" if parent is None
                             else "township", parent_code=parent, updated_at=now))  # fmt: skip
            session.flush()
        for code, url, key in ((T, net.node_url, net.key),
                               (U, f"http://127.0.0.1:{free_port()}", "k"),
                               (V, net.node_url, "not-the-key")):  # fmt: skip
            session.add(TownshipNode(code=code, url=url, api_key=key, registered_at=now,
                                     updated_at=now))  # fmt: skip
        session.commit()


def test_the_district_poll_stores_failing_and_unreachable_nodes(
    net: Network, sessions: sessionmaker[Session]
) -> None:
    net.break_replications()
    _nodes(sessions, net)
    with sessions() as session:
        assert unchecked_nodes(session) == 3  # the background loop asks them at once
    began = time.monotonic()
    assert check_nodes(sessions, timeout=5.0) == 3
    assert time.monotonic() - began < 15
    with sessions() as session:
        checks = {c.township: c for c in session.scalars(select(NodeCheck))}
        health = {n.township: n for n in node_health(session)}
        found = alerts(session, date(2026, 12, 1), datetime.now(UTC), silent_hours=24)
    assert set(checks) == {T, U, V}
    with sessions() as session:
        assert unchecked_nodes(session) == 0  # unreachable ones too: they wait their turn
    assert checks[T].reachable and checks[T].failing_jobs == 6 and checks[T].jobs_total == 16
    assert not checks[U].reachable and "无法连接节点" in checks[U].detail
    assert not checks[V].reachable and "密钥" in checks[V].detail
    assert all(c.last_ok_at is None for c in checks.values())
    assert health[T].township_name == "澄江镇" and all(n.troubled for n in health.values())
    nodes = [a for a in found if a.kind == "nodes"]
    assert len(nodes) == 1
    assert nodes[0].message == "3 个镇街节点复制失败或无法连接"
    assert nodes[0].link == "/fleet#nodes"


def test_kiosks_whose_last_attempt_failed_are_failing(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        _units(session)
    db = MemoryDatabase()
    earlier, later = (NOW - timedelta(minutes=m) for m in (40, 5))
    error = "同步未完成, 稍后会自动重试 (bad gateway)"
    for reg, village, instance, fields in (
        ("r-fail", VILLAGE, "pc-fail", {"error_kind": "error", "last_error": error,
                                        "last_success": earlier.isoformat()}),
        ("r-never", VILLAGE, "pc-never", {"error_kind": "error", "last_error": "本终端尚未启用",
                                          "last_success": ""}),
        ("r-back", VILLAGE, "pc-back", {"error_kind": "offline", "last_error": "离线",
                                        "online": False, "last_success": earlier.isoformat()}),
        ("r-good", VILLAGE, "pc-good", {}),
        ("r-old", OTHER_VILLAGE, "pc-old", {"error_kind": "error", "last_error": error,
                                            "last_success": earlier.isoformat()}),
    ):  # fmt: skip
        _enrolment(db, reg, village, instance)
        _status(db, reg, village, instance, later, last_attempt=later.isoformat(), **fields)
    _project(db, sessions, NOW)
    with sessions() as session:
        failing = {k.registration: k for k in fleet(session, FleetFilter(state="failing"), NOW)}
        found = {a.kind: a for a in alerts(session, NOW.date(), NOW, silent_hours=24)}
    # r-back's document arrived, so its push got through: the offline spell is over. r-old is
    # revoked. r-good's last attempt succeeded.
    assert set(failing) == {"r-fail", "r-never"}
    assert failing["r-fail"].last_error == error
    assert STATES["failing"] == "同步失败"
    assert found["failing"].message == "2 台村终端最近一次同步失败"
    assert found["failing"].link == "/fleet?state=failing"


def test_fleet_page_shows_failing_kiosks_and_node_checks_from_the_background_loop(
    database_url: str, sessions: sessionmaker[Session], net: Network
) -> None:
    net.break_replications()
    with sessions() as session:
        _units(session)
        accounts.create_account(
            session, "admin", "管理员", "district_admin", DISTRICT, "admin-pass-1"
        )
    now = datetime.now(UTC)
    db = MemoryDatabase()
    for reg, instance, fields in (
        ("r-good", "pc-good", {"error_kind": "error", "last_error": "拉取中断 (timeout)",
                               "last_success": (now - timedelta(hours=1)).isoformat()}),
        ("r-calm", "pc-calm", {}),
    ):  # fmt: skip
        _enrolment(db, reg, VILLAGE, instance)
        _status(db, reg, VILLAGE, instance, now, **fields)
    _project(db, sessions, now)
    with sessions() as session:
        session.add(Unit(code=T, name="澄江镇", level="township", parent_code=DISTRICT,
                         updated_at=now))  # fmt: skip
        session.flush()
        session.add(TownshipNode(code=T, url=net.node_url, api_key=net.key, registered_at=now,
                                 updated_at=now))  # fmt: skip
        session.commit()

    settings = Settings(database_url=database_url, couchdb_url=net.district.url,
                        node_check_seconds=3600)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        # The background loop's first round asks the node at once.
        with sessions() as session:
            poll(lambda: session.get(NodeCheck, T, populate_existing=True), "the node check")
        client.get("/login")
        client.post(
            "/login",
            data={"username": "admin", "password": "admin-pass-1", "next": "/",
                  "_csrf_token": client.cookies["sanji_csrf"]},
        )  # fmt: skip
        page = client.get("/fleet")
        assert page.status_code == 200
        assert "镇街节点复制状态" in page.text and 'id="nodes"' in page.text
        assert "澄江镇" in page.text and f"{BROKEN}: " in page.text and "6" in page.text
        failing = client.get("/fleet", params={"state": "failing"}).text
        assert "r-good" in failing and "r-calm" not in failing
        assert "同步失败" in failing and "拉取中断 (timeout)" in failing
        dashboard = client.get("/dashboard").text
        assert "1 台村终端最近一次同步失败" in dashboard
        assert "1 个镇街节点复制失败或无法连接" in dashboard and 'href="/fleet#nodes"' in dashboard
