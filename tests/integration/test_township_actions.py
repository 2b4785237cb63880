"""Township staff act on cases through the console: accept, return with a one-time notice,
materials and commitments, assign, escalate, transfer, suspend and resume, complete, refuse,
agency handover, conflict resolution — each an event in the real pouchdb-server, folded and
projected into SQLite (the action service also on PostgreSQL) — and the printable documents.
One test runs the real topology: a case in a village database reaches the township, staff
return it, and the ``returned`` event comes back down to the village database.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from core.calendar import WorkCalendar
from core.cases import (
    Case,
    Completed,
    Delivery,
    MaterialState,
    MaterialStatus,
    Origin,
    Person,
    Submitted,
    case_to_doc,
    event_id_range,
    event_to_doc,
    local_date,
    new_case,
    new_event,
)
from core.catalogue import CatalogueItem, HandlingLevel, Kind, Material, Mode
from core.clock import HlcClock
from core.fold import CaseState, CaseStatus, fold
from sync.couch import connect, couch_errors, ensure_database, save_document
from sync.devserver import PouchServer
from sync.readmodel import CaseRow
from sync.sql import make_engine, make_sessionmaker
from sync.topology import setup_district
from sync.topology import village_database as village_db_name
from sync.writer import EventWriter
from tests.conftest import CouchUnderTest
from tests.servers import join_district
from tests.sql import throwaway_database
from tests.waiting import poll
from township import db as township_db
from township.actions import (
    STALE,
    ActionRefused,
    Actor,
    CaseActions,
    StaleForm,
    refresh,
    version_of,
)
from township.app import create_app
from township.settings import TownshipSettings

DISTRICT = "500109000000"
T, OTHER_T = "500109110000", "500109001000"
A = "500109110201"
PASSWORD = "sanji-test-2026"
CSRF = "sanji_township_csrf"
ID = "500109194501010020"

ALLOWANCE = CatalogueItem(
    code="500109ZW0008", name="高龄津贴申请", kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP, modes=(Mode.AGENCY, Mode.WINDOW),
    department="区民政局", legal_limit_days=20, promised_limit_days=15,
    materials=(
        Material(key="id_card", name="居民身份证"),
        Material(key="hukou", name="户口簿"),
        Material(key="bank_card", name="银行卡", may_follow=True, follow_days=10),
    ),
)  # fmt: skip
PENSION = CatalogueItem(
    code="500109ZW0007", name="居民养老保险待遇申领", kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.DISTRICT, modes=(Mode.AGENCY,),
    department="区人力社保局", legal_limit_days=20, promised_limit_days=10,
    materials=(Material(key="id_card", name="居民身份证"),),
)  # fmt: skip

_counter = iter(range(1, 10_000))


def _today() -> date:
    return local_date(datetime.now(UTC))


def _account(username: str, role: str, unit: str, **extra: Any) -> dict[str, Any]:
    from argon2 import PasswordHasher

    return {"_id": f"account:{username}", "type": "account", "username": username,
            "display_name": f"{username} 同志", "role": role, "unit": unit,
            "password_hash": PasswordHasher().hash(PASSWORD), "disabled": False,
            "township": unit if unit != DISTRICT else None, **extra}  # fmt: skip


def _directory() -> list[dict[str, Any]]:
    units = [(DISTRICT, "示范区", "district"), (T, "示范镇", "township"),
             (OTHER_T, "天生街道", "township"), (A, "示范村", "village")]  # fmt: skip
    docs = [
        {"_id": f"unit:{code}", "type": "unit", "code": code, "name": name, "level": level,
         "township": T if code in (T, A) else (OTHER_T if code == OTHER_T else None),
         "village": A if code == A else None}
        for code, name, level in units
    ]  # fmt: skip
    return [
        *docs,
        _account("zhang.t", "township_staff", T),
        _account("li.t", "township_head", T),
        _account("wang.o", "township_staff", OTHER_T),
        _account("gone.t", "township_staff", T, disabled=True),
        _account("jg.v201", "village_agent", A, village=A),
    ]


def _open(
    item: CatalogueItem = ALLOWANCE,
    *,
    when: datetime | None = None,
    promise: date | None = None,
    village: str | None = A,
) -> tuple[Case, list[dict[str, Any]]]:
    """A case and its `submitted` event as a kiosk of village A writes them."""
    when = when or datetime.now(UTC)
    n = next(_counter)
    origin = Origin(village or T, "k7x2m9qa")
    clock = HlcClock(origin.key, lambda: int(when.timestamp() * 1000))
    materials = tuple(
        MaterialState(key=m.key, name=m.name, status=MaterialStatus.TO_FOLLOW, deadline=promise)
        if promise and m.may_follow
        else MaterialState(key=m.key, name=m.name, status=MaterialStatus.PROVIDED)
        for m in item.materials
    )
    case = new_case(
        origin=origin, counter=n * 10, hlc=clock.tick(), wall_time=when, author="jg.v201",
        village=village, township=T, item=item, catalogue_version=1,
        applicant=Person(name=f"村民{n}", id_number=ID, phone="13800000000"),
        mode=Mode.AGENCY, handling_unit=T, materials=materials,
    )  # fmt: skip
    submitted = new_event(case, Submitted(), origin=origin, counter=n * 10 + 1,
                          hlc=clock.tick(), wall_time=when, author="jg.v201")  # fmt: skip
    return case, [case_to_doc(case), event_to_doc(submitted)]


@pytest.fixture(scope="module")
def couch(couch_server: CouchUnderTest) -> Iterator[Any]:
    """The township's CouchDB: directory, settings and an empty township database."""
    server = connect(couch_server.url)
    directory = ensure_database(server, "directory")
    for doc in _directory():
        save_document(directory, doc)
    save_document(ensure_database(server, "settings"), {
        "_id": "settings:district", "type": "settings",
        "calendar": {"exceptions": [], "announced_years": []}, "sla": {},
    })  # fmt: skip
    ensure_database(server, "township")
    yield server
    couch_server.check_alive()


@pytest.fixture(scope="module")
def console(couch: Any, couch_server: CouchUnderTest, tmp_path_factory: Any) -> Iterator[Any]:
    """The console on SQLite, its projection following every 0.2 s, zhang.t logged in."""
    url = f"sqlite:///{tmp_path_factory.mktemp('actions') / 'township.sqlite'}"
    township_db.migrate(url)
    settings = TownshipSettings(code=T, couchdb_url=couch_server.url, database_url=url,
                                project_every=0.2)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        _login(client)
        yield client


def _login(client: TestClient[Litestar], username: str = "zhang.t") -> None:
    client.get("/login")
    answer = client.post("/login", data={"username": username, "password": PASSWORD,
                         "next": "/inbox", "_csrf_token": client.cookies[CSRF]},
                         follow_redirects=False)  # fmt: skip
    assert answer.status_code in (302, 303), answer.text


def _arrive(client: TestClient[Litestar], couch: Any, opened: tuple[Case, list[Any]]) -> Case:
    """Put the case into the township database; wait until the console has received it."""
    case, docs = opened
    for doc in docs:
        save_document(couch["township"], doc)
    poll(lambda: "已接收" in _status(client, case), f"{case.case_number} received")
    return case


def _page(client: TestClient[Litestar], case: Case) -> str:
    answer = client.get(f"/cases/{case.case_number}")
    assert answer.status_code == 200, answer.text
    return answer.text


def _status(client: TestClient[Litestar], case: Case) -> str:
    found = re.search(r'id="status"><b>([^<]+)<', client.get(f"/cases/{case.case_number}").text)
    return found[1] if found else ""


def _version(page: str) -> str:
    found = re.search(r'name="version" value="([^"]*)"', page)
    assert found, "the page offers no action form"
    return found[1].replace("&#43;", "+")


def _act(
    client: TestClient[Litestar], case: Case, action: str, version: str | None = None,
    **fields: Any,
) -> str:  # fmt: skip
    """Post one action's form as the page renders it; the page it redirects to."""
    version = version if version is not None else _version(_page(client, case))
    answer = client.post(
        f"/cases/{case.case_number}/actions/{action}",
        data={**fields, "version": version, "_csrf_token": client.cookies[CSRF]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/cases/{case.case_number}"
    return _page(client, case)


def _flash(page: str) -> str:
    return " ".join(re.findall(r'<div class="flash \w+" role="status">([^<]*)</div>', page))


def _events(couch: Any, case: Case) -> list[dict[str, Any]]:
    start, end = event_id_range(case.id)
    with couch_errors():
        rows = couch["township"].view("_all_docs", startkey=start, endkey=end, include_docs=True)
        return [dict(r.doc) for r in rows]


def _kinds(couch: Any, case: Case) -> list[str]:
    return sorted(e["kind"] for e in _events(couch, case))


def _fold(couch: Any, case: Case) -> CaseState:
    return fold(case, _events(couch, case), WorkCalendar(), _today())


# --- the actions --------------------------------------------------------------------------


def test_accept_fixes_the_due_date_and_prints_the_notice(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _arrive(console, couch, _open())
    page = _act(console, case, "accept", note="材料齐全")
    assert "已受理" in _flash(page)
    accepted = [e for e in _events(couch, case) if e["kind"] == "accepted"]
    assert len(accepted) == 1
    assert accepted[0]["author"] == "zhang.t" and accepted[0]["origin"]["unit"] == T
    state = _fold(couch, case)
    assert state.status is CaseStatus.ACCEPTED and state.accepted_on == _today()
    due = WorkCalendar().add_working_days(state.accepted_on, ALLOWANCE.promised_limit_days)
    assert state.due == due
    assert due.day.isoformat() in re.search(r'id="due">([^<]*)<', page)[1]  # type: ignore[index]
    # Only what an accepted case allows is offered.
    assert 'id="form-complete"' in page and 'id="form-suspend"' in page
    assert 'id="form-accept"' not in page and 'id="form-return"' not in page
    doc = console.get(f"/cases/{case.case_number}/documents/acceptance").text
    assert "受理通知书" in doc and "示范镇便民服务中心" in doc and case.case_number in doc
    assert "500109********0020" in doc and ID not in doc and "高龄津贴申请" in doc
    assert due.day.isoformat() in doc
    assert console.get(f"/cases/{case.case_number}/documents/refusal").status_code == 404


def test_return_lists_every_missing_material_and_stops_the_clock(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _arrive(console, couch, _open())
    assert re.search(r'id="due">\d{4}-', _page(console, case))  # expected date before
    page = _act(console, case, "return", missing=["id_card", "hukou"],
                extra="村委会证明：需加盖公章\n\n房产证复印件", reason="材料不全")  # fmt: skip
    assert "一次性告知书" in _flash(page)
    returned = [e for e in _events(couch, case) if e["kind"] == "returned"]
    assert len(returned) == 1
    missing = returned[0]["payload"]["missing"]
    assert [(m["name"], m.get("key"), m.get("note", "")) for m in missing] == [
        ("居民身份证", "id_card", ""), ("户口簿", "hukou", ""),
        ("村委会证明", None, "需加盖公章"), ("房产证复印件", None, ""),
    ]  # fmt: skip
    state = _fold(couch, case)
    assert state.status is CaseStatus.RETURNED and state.due is None
    assert state.expected_due is None  # the clock stopped
    assert 'id="notice"' in page and 'id="form-accept"' not in page
    doc = console.get(f"/cases/{case.case_number}/documents/notice").text
    listed = re.search(r'id="doc-missing">(.*?)</ol>', doc, re.S)
    assert listed and all(name in listed[1] for name in ("居民身份证", "户口簿", "村委会证明"))
    assert "需加盖公章" in listed[1] and "一次性告知书" in doc


def test_a_return_needs_at_least_one_material(console: TestClient[Litestar], couch: Any) -> None:
    case = _arrive(console, couch, _open())
    before = _kinds(couch, case)
    page = _act(console, case, "return", extra="  \n")
    assert "至少一项" in _flash(page) and _kinds(couch, case) == before


def test_illegal_transitions_are_refused_and_write_nothing(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _arrive(console, couch, _open())
    before = _kinds(couch, case)
    page = _act(console, case, "complete", result="已发放", delivery="window")
    assert "操作未执行" in _flash(page) and "不能“办结”" in _flash(page)
    page = _act(console, case, "resume")
    assert "不能“恢复计时”" in _flash(page)
    page = _act(console, case, "suspend", reason="inspection")
    assert "不能“中止计时”" in _flash(page)
    page = _act(console, case, "deliver", to="citizen", via="window", person="村民")
    assert "不能“结果送达”" in _flash(page)
    page = _act(console, case, "suspend", reason="nonsense")
    assert "请选择中止计时的法定情形" in _flash(page)
    assert _kinds(couch, case) == before and _status(console, case) == "已接收"
    version = _version(_page(console, case))
    token = console.cookies[CSRF]
    gone = console.post(f"/cases/{case.case_number}/actions/explode",
                        data={"version": version, "_csrf_token": token})  # fmt: skip
    assert gone.status_code == 404
    no_csrf = console.post(f"/cases/{case.case_number}/actions/accept", data={"version": version})
    assert no_csrf.status_code == 403 and _kinds(couch, case) == before


def test_a_form_posted_twice_writes_once(console: TestClient[Litestar], couch: Any) -> None:
    case = _arrive(console, couch, _open())
    version = _version(_page(console, case))
    _act(console, case, "accept", version=version)
    again = _act(console, case, "accept", version=version)
    assert STALE in _flash(again)
    assert _kinds(couch, case).count("accepted") == 1
    # Two requests at once with the same form: one event.
    version = _version(_page(console, case))
    service = CaseActions(console.app.state)
    outcomes: list[str] = []

    def assign() -> None:
        try:
            service.assign(case.case_number, version, Actor("zhang.t"), "li.t")
            outcomes.append("written")
        except StaleForm:
            outcomes.append("stale")

    threads = [threading.Thread(target=assign) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["stale", "stale", "stale", "written"]
    assert _kinds(couch, case).count("assigned") == 1


def test_assign_only_to_staff_of_this_unit(console: TestClient[Litestar], couch: Any) -> None:
    case = _arrive(console, couch, _open())
    page = _page(console, case)
    options = re.search(r'<select name="staff" required>(.*?)</select>', page, re.S)
    assert options and "li.t" in options[1] and "zhang.t" in options[1]
    assert "wang.o" not in options[1] and "gone.t" not in options[1] and "jg.v201" not in options[1]
    for outsider in ("wang.o", "gone.t", "jg.v201", "nobody"):
        refused = _act(console, case, "assign", staff=outsider)
        assert "只能分派给本中心在岗的工作人员" in _flash(refused), outsider
    assert "assigned" not in _kinds(couch, case)
    _act(console, case, "assign", staff="li.t")
    page = _act(console, case, "assign", staff="zhang.t", note="改派")
    assert 'id="assignee">zhang.t 同志<' in page
    assigned = sorted(
        (e["hlc"], e["payload"]["staff"], e["payload"]["staff_name"])
        for e in _events(couch, case) if e["kind"] == "assigned"
    )  # fmt: skip
    assert [(s, n) for _, s, n in assigned] == [("li.t", "li.t 同志"), ("zhang.t", "zhang.t 同志")]


def test_agency_case_from_materials_to_the_citizen(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _arrive(console, couch, _open())
    page = _act(console, case, "materials", keys=["id_card", "hukou"], from_person="")
    assert "交材料的人" in _flash(page)
    _act(console, case, "materials", keys=["id_card", "hukou"], from_person="代办员 王芳")
    _act(console, case, "accept")
    page = _act(console, case, "suspend", reason="inspection", note="入户核查")
    assert _status(console, case) == "中止计时" and 'id="form-resume"' in page
    assert 'id="form-complete"' not in page
    _act(console, case, "resume", note="核查完毕")
    page = _act(console, case, "complete", result="核定高龄津贴每月100元", delivery="village_agent")
    assert "已办结" in _flash(page) and 'id="form-deliver"' in page
    _act(console, case, "deliver", to="agent", via="village_agent", person="代办员 王芳")
    _act(console, case, "deliver", to="citizen", via="village_agent", person="村民本人")
    state = _fold(couch, case)
    assert state.status is CaseStatus.COMPLETED and state.delivery is Delivery.VILLAGE_AGENT
    assert state.paused_days == 0 and state.suspend_reason is None
    assert [(h.to.value, h.person) for h in state.handovers] == [
        ("agent", "代办员 王芳"), ("citizen", "村民本人"),
    ]  # fmt: skip
    received = [e for e in _events(couch, case) if e["kind"] == "materials_received"]
    assert received[0]["payload"]["from_person"] == "代办员 王芳"
    assert received[0]["author"] == "zhang.t" and received[0]["wall_time"]
    doc = console.get(f"/cases/{case.case_number}/documents/result").text
    assert "办结通知书" in doc and "核定高龄津贴每月100元" in doc and "村代办员转交" in doc
    assert "按时办结" in doc


def test_refuse_with_a_reason_and_its_notice(console: TestClient[Litestar], couch: Any) -> None:
    case = _arrive(console, couch, _open())
    page = _act(console, case, "refuse", reason=" ")
    assert "理由" in _flash(page) and "refused" not in _kinds(couch, case)
    _act(console, case, "refuse", reason="申请人未满80周岁，不符合申请条件")
    assert _fold(couch, case).status is CaseStatus.REFUSED
    doc = console.get(f"/cases/{case.case_number}/documents/refusal").text
    assert "不予受理通知书" in doc and "不符合申请条件" in doc and "行政复议" in doc


def test_transfer_creates_the_linked_case_for_the_other_township(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _arrive(console, couch, _open())
    for wrong in (T, A, "500109110", "510109001000"):
        page = _act(console, case, "transfer", to_township=wrong, reason="走错镇街")
        assert "操作未执行" in _flash(page), wrong
    assert "transferred" not in _kinds(couch, case)
    page = _act(console, case, "transfer", to_township=OTHER_T, reason="申请人户籍在天生街道")
    number = re.search(r"新办件编号 (\S+)", _flash(page))
    assert number and _status(console, case) == "已移交"
    transferred = [e for e in _events(couch, case) if e["kind"] == "transferred"][0]
    new_id = transferred["payload"]["new_case_id"]
    assert transferred["payload"]["to_township"] == OTHER_T
    new = couch["township"][new_id]
    assert new["township"] == OTHER_T and new["village"] is None
    assert new["handling_unit"] == OTHER_T and new["linked_case"] == case.id
    assert new["origin"]["unit"] == T and new["case_number"] == number[1]
    assert new["applicant"]["id_number"] == ID and new["item_code"] == ALLOWANCE.code
    start, end = event_id_range(new_id)  # the new case's own events
    kinds = [r.doc["kind"] for r in couch["township"].view(
        "_all_docs", startkey=start, endkey=end, include_docs=True)]  # fmt: skip
    assert kinds == ["submitted"]
    # Not this township's case: not in its inbox, and nobody here receives it.
    assert console.get(f"/cases/{number[1]}").status_code == 404


def test_escalate_items_handled_by_the_district(console: TestClient[Litestar], couch: Any) -> None:
    local = _arrive(console, couch, _open())
    assert 'id="form-escalate"' not in _page(console, local)
    page = _act(console, local, "escalate", reason="试试")
    assert "不由区级办理" in _flash(page) and "escalated" not in _kinds(couch, local)
    case = _arrive(console, couch, _open(PENSION))
    assert 'id="form-escalate"' in _page(console, case)
    page = _act(console, case, "escalate", reason="区级审核")
    assert _fold(couch, case).handling_unit == DISTRICT
    assert 'id="handling-unit"' in page and 'id="form-accept"' not in page
    # The district decides now: the township can no longer accept it.
    service = CaseActions(console.app.state)
    state = _fold(couch, case)
    with pytest.raises(ActionRefused, match="本中心不能“受理”"):
        service.accept(case.case_number, version_of(state), Actor("zhang.t"))


def test_overdue_commitments_are_listed_and_fulfilled(
    console: TestClient[Litestar], couch: Any
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=30)
    case = _arrive(console, couch, _open(when=long_ago, promise=_today() - timedelta(days=5)))
    page = console.get("/commitments/overdue").text
    row = re.search(rf'<tr data-case="{case.case_number}">(.*?)</tr>', page, re.S)
    assert row and "银行卡" in row[1] and ">5<" in row[1] and "示范村" in page
    page = _act(console, case, "commitments", keys=["id_card"])
    assert "不是待补交的承诺材料" in _flash(page)
    _act(console, case, "commitments", keys=["bank_card"], note="已交复印件")
    assert "commitment_fulfilled" in _kinds(couch, case)
    assert case.case_number not in console.get("/commitments/overdue").text


def test_conflicts_from_replication_are_shown_and_resolved(
    console: TestClient[Litestar], couch: Any
) -> None:
    case = _arrive(console, couch, _open())
    # A kiosk's `completed` arrives while the case is only received: kept as a conflict.
    kiosk = Origin(A, "k7x2m9qa")
    stamp = HlcClock(kiosk.key, lambda: int(datetime.now(UTC).timestamp() * 1000)).tick(
        after=_fold(couch, case).last_stamp
    )
    done = Completed(result="村里办好了", delivery=Delivery.WINDOW)
    odd = new_event(case, done, origin=kiosk, counter=99_000, hlc=stamp,
                    wall_time=datetime.now(UTC), author="jg.v201")  # fmt: skip
    save_document(couch["township"], event_to_doc(odd))
    poll(lambda: 'id="conflicts"' in _page(console, case), "the conflict on the case page")
    page = _page(console, case)
    assert odd.id in page and "办结" in page
    page = _act(console, case, "resolve", event_ids=[odd.id], note="")
    assert "请说明如何处理了冲突" in _flash(page)
    page = _act(console, case, "resolve", event_ids=[odd.id], note="已电话核实，村里误操作")
    state = _fold(couch, case)
    assert (
        not state.conflicts and state.resolved_conflicts[0].resolution == "已电话核实，村里误操作"
    )
    assert 'id="conflicts"' not in page and state.status is CaseStatus.RECEIVED


# --- the action service on PostgreSQL ------------------------------------------------------


def test_the_action_service_on_postgresql(
    console: TestClient[Litestar], couch: Any, couch_server: CouchUnderTest, tmp_path: Path
) -> None:
    case = _arrive(console, couch, _open())
    with throwaway_database("postgresql", tmp_path) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        settings = TownshipSettings(code=T, couchdb_url=couch_server.url, database_url=url)
        state = SimpleNamespace(settings=settings, sessions=sessions,
                                couch=lambda: connect(couch_server.url),
                                writer=EventWriter(sessions, T))  # fmt: skip
        try:
            refresh(state)
            service = CaseActions(state)
            version = service.snapshot(case.id).version
            service.return_with_notice(case.case_number, version, Actor("zhang.t"),
                                       ["hukou"], ["村委会证明"])  # fmt: skip
            with pytest.raises(StaleForm):
                service.accept(case.case_number, version, Actor("zhang.t"))
            fresh = service.snapshot(case.id)
            assert fresh.state.status is CaseStatus.RETURNED
            assert [m.name for m in fresh.state.notice.missing] == ["户口簿", "村委会证明"]  # type: ignore[union-attr]
            with sessions() as session:
                row = session.get(CaseRow, case.id)
                assert row is not None and row.status == "returned"
        finally:
            engine.dispose()


# --- the round trip to a kiosk's database --------------------------------------------------


def test_a_return_reaches_the_village_database(tmp_path: Path) -> None:
    """District and township servers set up by sync.topology with continuous replications: a
    case in village A's database reaches the township, staff return it through the console
    running against that township's CouchDB, and the `returned` event reaches village A."""
    with PouchServer() as district, PouchServer() as township:
        setup_district(district.url)
        d = connect(district.url)
        for doc in _directory():
            save_document(d["directory"], doc)
        save_document(d["settings"], {"_id": "settings:district", "type": "settings",
                                      "calendar": {}, "sla": {}})  # fmt: skip
        assert join_district(district, township.url, T).villages == [A]
        t = connect(township.url)
        poll(lambda: t["directory"].get("account:zhang.t"), "the staff account")
        case, docs = _open()
        village = t[village_db_name(A)]
        for doc in docs:
            save_document(village, doc)  # as the kiosk's push leaves them
        url = f"sqlite:///{tmp_path / 'township.sqlite'}"
        township_db.migrate(url)
        settings = TownshipSettings(code=T, couchdb_url=township.url, database_url=url,
                                    project_every=0.2)  # fmt: skip
        with TestClient(create_app(settings)) as client:
            _login(client)
            poll(lambda: "已接收" in _status(client, case), "the case at the township")
            page = _act(client, case, "return", missing=["hukou"], extra="村委会证明")
            assert "一次性告知书" in _flash(page)

            def in_village() -> list[dict[str, Any]]:
                start, end = event_id_range(case.id)
                rows = village.view("_all_docs", startkey=start, endkey=end, include_docs=True)
                return [dict(r.doc) for r in rows if r.doc["kind"] == "returned"]

            returned = poll(in_village, "the returned event in the village database")
            assert [m["name"] for m in returned[0]["payload"]["missing"]] == [
                "户口簿",
                "村委会证明",
            ]
            assert returned[0]["village"] == A and returned[0]["origin"]["unit"] == T
            # And up to the district, like every case event of the township.
            poll(lambda: d["district"].get(returned[0]["_id"]), "the event at the district")
        district.check_alive()
        township.check_alive()
