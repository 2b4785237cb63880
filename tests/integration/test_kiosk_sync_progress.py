"""Sync, visible (continued): enrolment and sync in the background with their progress, the
documents the township refuses shown to the agent, and the link checked at the moment it matters.

Reuses the network of test_kiosk (district, township, township node, one kiosk), built afresh
for this module; the tests run in order on one kiosk.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from sync.couch import couch_errors
from sync.devserver import free_port
from sync.topology import village_database
from tests.integration import test_kiosk as base
from tests.integration.test_kiosk import CODE, CSRF, Network, form, login, poll, store_of
from tests.integration.test_kiosk_cases import case_form
from tests.integration.test_kiosk_sync import _point_at
from village_node.settings import load_enrolment
from village_node.syncing import OFFLINE, Progress, Syncer, status_id

net = base.net  # the same network fixture, built afresh for this module
_servers_alive = base._servers_alive

A = "500109102001"
T = "500109102000"
OTHER = "500109102002"  # a neighbouring village of the same township


def _post_json(client: TestClient[Litestar], path: str, **data: str) -> Any:
    """POST a form the way the page's script does: CSRF in a header, JSON asked for."""
    return client.post(
        path,
        data=data,
        headers={"Accept": "application/json", "X-CSRFToken": client.cookies[CSRF]},
        follow_redirects=False,
    )


def _progress(client: TestClient[Litestar]) -> dict[str, Any]:
    answer = client.get("/sync/progress")
    assert answer.status_code == 200
    return dict(answer.json())


def _until_idle(client: TestClient[Litestar]) -> dict[str, Any]:
    return poll(lambda: (p := _progress(client)) and not p["busy"] and p, "the sync to end")


def test_enrolment_from_the_page_script_pulls_in_the_background(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    wrong = _post_json(c, "/enrol", township_url=net.endpoint, village=A, code="WRONG-CODE-0000")
    assert wrong.status_code == 400 and "启用码" in wrong.json()["error"]
    assert load_enrolment(net.settings) is None

    answer = _post_json(c, "/enrol", township_url=net.endpoint, village=A, code=CODE)
    assert answer.status_code in (200, 201) and answer.json() == {"next": "/login"}
    done = _until_idle(c)
    assert done["link"] == "online" and done["message"].startswith("同步完成")
    assert done["last_sync"] != "—" and done["waiting"] == 0
    # The login page says so, and the first download brought the agents: the login works.
    assert "本终端已启用" in c.get("/login").text
    assert login(c).status_code in (302, 303)


def test_a_sync_started_by_the_page_reports_its_progress(net: Network) -> None:
    c = net.client
    syncer: Syncer = c.app.state.kiosk.syncer
    seen: list[Progress] = []

    class Watch:
        """Records every progress the syncer reports."""

        def __set_name__(self, owner: type, name: str) -> None:
            self.name = name

        def __get__(self, obj: Any, owner: type) -> Progress:
            return obj.__dict__.get("_watched", Progress()) if obj is not None else Progress()

        def __set__(self, obj: Any, value: Progress) -> None:
            seen.append(value)
            obj.__dict__["_watched"] = value

    # 1,200 documents waiting on the township: the pull reports them in pages of 500.
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    village = net.t[village_database(A)]
    with couch_errors():
        village.update(
            [{"_id": f"settings:bulk:{i:04d}", "type": "settings", "village": A, "township": T}
             for i in range(1200)]
        )  # fmt: skip
    syncer.__class__ = type("WatchedSyncer", (Syncer,), {"progress": Watch()})
    try:
        assert _post_json(c, "/sync").json() == {"started": True}
        done = _until_idle(c)
    finally:
        syncer.__class__ = Syncer
    assert done["message"].startswith("同步完成") and "下载 1200 份" in done["message"]
    pulls = [p for p in seen if p.phase == "pull" and p.total]
    assert [p.done for p in pulls][:2] == [500, 1000]  # a page at a time, of all 1,200
    assert pulls[-1].done >= 1200 and pulls[-1].total >= 1200 and pulls[-1].percent == 100
    assert any(p.phase == "push" for p in seen)
    assert seen[-1] == Progress()  # idle again
    assert store_of(net).get("settings:bulk:1199")["village"] == A


def test_documents_the_township_refuses_are_shown_and_kept(net: Network) -> None:
    c = net.client
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    # A rogue document: a case claiming another village (the village database refuses it).
    rogue = {"_id": f"case:{OTHER}:{enrolment.instance}:00000001", "type": "case",
             "schema_version": 1, "village": OTHER, "township": T,
             "origin": {"unit": OTHER, "instance": enrolment.instance}, "counter": 1}  # fmt: skip
    store_of(net).put(rogue)
    assert form(c, "/sync", back="/catalogue").status_code in (302, 303)
    state = c.app.state.kiosk.syncer.state()
    assert [r["id"] for r in state.refused] == [rogue["_id"]]
    assert "不是本村的文档" in state.refused[0]["reason"]
    assert not net.has(village_database(A), rogue["_id"])
    # Kept here, told in the header and listed on the sync page, and in the status report.
    assert store_of(net).get(rogue["_id"])["village"] == OTHER
    page = c.get("/catalogue").text
    assert 'id="sync-refused"' in page and "拒收" in page
    details = c.get("/sync").text
    assert rogue["_id"] in details and "不是本村的文档" in details
    assert store_of(net).get(status_id(enrolment))["refused"] == 1
    assert _progress(c)["refused"] == 1
    # Seen: the list is cleared; a later sync does not bring it back (it was checkpointed past).
    assert form(c, "/sync/refused/forget").status_code in (302, 303)
    assert 'id="no-refused"' in c.get("/sync").text
    form(c, "/sync", back="/catalogue")
    assert c.app.state.kiosk.syncer.state().refused == []


def _video_option(client: TestClient[Litestar]) -> str:
    """The wizard's row for video after a review of 个体工商户设立登记 (video or window)."""
    data = case_form(client)
    page = form(client, "/cases/new", action="review", **data).text
    row = re.search(r'<tr class="([^"]*)"><td><label class="check"><input type="radio" '
                    r'name="mode" value="video"[^>]*>.*?</tr>', page, re.S)  # fmt: skip
    assert row, "the review lists the video option"
    return row[0]


def test_the_link_is_checked_when_video_is_offered(net: Network) -> None:
    syncer: Syncer = net.client.app.state.kiosk.syncer
    assert syncer.check_link() is True
    assert "disabled" not in _video_option(net.client)
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    # The link drops after the last sync: the header still says online, the review finds out.
    _point_at(net, f"http://127.0.0.1:{free_port()}/")
    try:
        assert syncer.state().online is True
        video = _video_option(net.client)
        assert "disabled" in video and "网络未连接" in video
        state = syncer.state()
        assert state.online is False and state.error_kind == OFFLINE and state.failures == 1
        assert 'id="link">离线' in net.client.get("/catalogue").text
    finally:
        _point_at(net, enrolment.couch_url)
    form(net.client, "/sync", back="/catalogue")
    assert syncer.state().online is True
    assert "disabled" not in _video_option(net.client)
