"""The kiosk's case actions after intake, against a real township (pouchdb-server): complete an
on-the-spot case, resubmit a case the township returned with a one-time notice, rate a completed
case (好差评).

Reuses the network of test_kiosk (district, township, township node, one kiosk); the tests run in
order on one kiosk. Every check reads the stored documents and the folded state, not only the
answer's status.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from core.cases import (
    Case,
    MissingMaterial,
    Origin,
    Person,
    Received,
    Returned,
    case_from_doc,
    case_id,
    case_number,
    case_to_doc,
    event_to_doc,
    local_date,
    new_event,
)
from core.clock import Hlc
from core.fold import CaseState, CaseStatus
from sync.couch import save_document
from sync.topology import village_database
from tests.integration import test_kiosk as base
from tests.integration.test_kiosk import AGENT, CODE, Network, form, login, poll, store_of
from tests.integration.test_kiosk_cases import resident_id
from village_node.cases import CaseDesk
from village_node.errors import KioskError
from village_node.settings import Enrolment, load_enrolment

net = base.net  # the same network fixture, built afresh for this module
_servers_alive = base._servers_alive

A = "500109102001"
B = "500109102002"  # another village of the same township
T = "500109102000"
DOCTOR = "500109SH0004"  # 家庭医生签约: the village handles it, on the spot
BUSINESS = "500109SW0001"  # 个体工商户设立登记: the township handles it
TOWNSHIP = Origin(T, "tw01")

cases: dict[str, str] = {}  # role in these tests → case number


def open_case(client: Any, item: str, serial: int, **extra: str) -> str:
    """Open a case through the wizard; its number."""
    page = client.get("/cases/new", params={"item": item}).text
    key = re.search(r'name="intake_key" value="([0-9a-f]+)"', page)
    assert key, "the form carries an intake key"
    materials = (
        {"m_id_card": "provided", "m_medical_card": "provided", "mode": "on_the_spot"}
        if item == DOCTOR
        else {"m_application": "provided", "m_id_card": "provided",
              "m_premises_proof": "provided", "mode": "window"}
    )  # fmt: skip
    data = {
        "item": item,
        "intake_key": key[1],
        "applicant_type": "person",
        "p_name": f"李{serial}",
        "p_id": resident_id(f"500109198001{serial:02d}002"),
        "p_phone": "13900139000",
        **materials,
        **extra,
    }
    saved = form(client, "/cases/new", action="save", **data)
    assert saved.status_code in (302, 303), saved.text
    return str(saved.headers["location"].split("/")[2])


def desk(net: Network) -> CaseDesk:
    """The kiosk's case desk."""
    return net.client.app.state.kiosk.desk  # type: ignore[no-any-return]


def enrolment(net: Network) -> Enrolment:
    """The kiosk's enrolment."""
    found = load_enrolment(net.settings)
    assert found is not None
    return found


def state_of(net: Network, number: str) -> CaseState:
    """The case's folded state as the kiosk's read model holds it."""
    row = desk(net).by_number(number)
    assert row is not None
    return row.state


def id_of(net: Network, number: str) -> str:
    """The case id of a case number."""
    return state_of(net, number).case_id


def events(net: Network, number: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The case's event documents in the kiosk's store (of one kind)."""
    prefix = "case_event:" + id_of(net, number)[5:] + ":"
    rows = store_of(net).changes(include_docs=True)["results"]
    return [
        r["doc"]
        for r in rows
        if r["id"].startswith(prefix) and (kind is None or r["doc"]["kind"] == kind)
    ]


def counter(net: Network) -> int:
    """The kiosk's own counter in ``_local/kiosk``."""
    local = store_of(net).get_local("_local/kiosk")
    return int(local["counters"][f"{A}:{enrolment(net).instance}"])


def case_page(client: Any, number: str) -> str:
    """The case page's HTML."""
    answer = client.get(f"/cases/{number}")
    assert answer.status_code == 200
    return str(answer.text)


def test_enrol_log_in_and_open_cases(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    assert form(c, "/enrol", township_url=net.endpoint, village=A, code=CODE).status_code == 302
    assert login(c).status_code in (302, 303)
    cases["spot"] = open_case(c, DOCTOR, 1)
    cases["window"] = open_case(c, BUSINESS, 2)
    assert state_of(net, cases["spot"]).status is CaseStatus.SUBMITTED
    page = case_page(c, cases["spot"])  # offered right after intake, from the case page
    assert 'id="complete-form"' in page and "就近办" in page and "当场领取" in page
    assert 'id="rate-form"' not in page and 'id="resubmit-form"' not in page
    window = case_page(c, cases["window"])
    assert 'id="complete-form"' not in window and 'id="rate-form"' not in window


# --- completing on the spot ------------------------------------------------------------------


def test_complete_an_on_the_spot_case_once(net: Network) -> None:
    c, number = net.client, cases["spot"]
    before = counter(net)
    empty = form(c, f"/cases/{number}/complete", result=" ", delivery="window", handed_over="1")
    assert empty.status_code == 400 and 'id="err-complete"' in empty.text
    assert "请填写办理结果" in empty.text
    bad = form(c, f"/cases/{number}/complete", result="已签约", delivery="pigeon")
    assert bad.status_code == 400 and "怎样交到群众手中" in bad.text
    assert events(net, number) == [events(net, number, "submitted")[0]]  # nothing written
    data = {"result": "已签约, 协议已交群众", "delivery": "window", "handed_over": "1"}
    done = form(c, f"/cases/{number}/complete", **data)
    assert done.status_code in (302, 303) and done.headers["location"] == f"/cases/{number}"
    page = case_page(c, number)
    assert (
        "已办结" in page and 'id="status"><b>已办结' in page and "请群众对本次服务作出评价" in page
    )
    assert 'id="complete-form"' not in page and 'id="rate-form"' in page
    again = form(c, f"/cases/{number}/complete", **data)  # the same form posted twice
    assert again.status_code in (302, 303)
    assert "未重复保存" in case_page(c, number)
    kinds = sorted(d["kind"] for d in events(net, number))
    assert kinds == ["accepted", "completed", "delivered", "submitted"]
    assert counter(net) == before + 3
    completed = events(net, number, "completed")[0]
    assert completed["payload"]["result"] == "已签约, 协议已交群众"
    assert completed["payload"]["delivery"] == "window" and completed["author"] == AGENT
    assert completed["origin"] == {"unit": A, "instance": enrolment(net).instance}
    delivered = events(net, number, "delivered")[0]["payload"]
    assert delivered["to"] == "citizen" and delivered["person"] == "李1"
    state = state_of(net, number)
    assert state.status is CaseStatus.COMPLETED and state.accepted_on == state.completed_on
    assert state.result == "已签约, 协议已交群众" and not state.conflicts
    assert [h.to.value for h in state.handovers] == ["citizen"]


def test_two_completions_at_once_write_once(net: Network) -> None:
    number = open_case(net.client, DOCTOR, 3)
    case_id = id_of(net, number)

    def complete(i: int) -> Any:
        return desk(net).complete_on_the_spot(
            case_id,
            enrolment(net),
            result=f"办好了 {i}",
            delivery="window",
            handed_over=False,
            author=AGENT,
        )

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(complete, range(4)))
    assert sum(1 for d in done if d.written) == 1 and sum(d.repeated for d in done) == 3
    assert len(events(net, number, "completed")) == 1
    assert len(events(net, number, "accepted")) == 1
    assert not events(net, number, "delivered")  # not handed over: no delivered event
    assert state_of(net, number).status is CaseStatus.COMPLETED
    cases["spot2"] = number


def test_completion_is_refused_for_a_case_the_township_handles(net: Network) -> None:
    c, number = net.client, cases["window"]
    refused = form(c, f"/cases/{number}/complete", result="已办", delivery="window")
    assert refused.status_code == 400 and "只有就近办的办件才能在本机当场办结" in refused.text
    assert [d["kind"] for d in events(net, number)] == ["submitted"]
    assert state_of(net, number).status is CaseStatus.SUBMITTED


def test_completion_is_refused_for_another_villages_case(net: Network) -> None:
    mine = case_from_doc(store_of(net).get(id_of(net, cases["spot"])))
    origin = Origin(B, "kb01")
    now = datetime.now(UTC)
    other = copied_to(mine, origin, B, now)
    store_of(net).bulk_docs([case_to_doc(other)])  # as if it had come down by mistake
    with pytest.raises(KioskError, match="这不是本村的办件"):
        desk(net).complete_on_the_spot(
            other.id, enrolment(net), result="已办", delivery="window", author=AGENT
        )
    assert net.client.get(f"/cases/{other.case_number}").status_code == 404
    answer = form(net.client, f"/cases/{other.case_number}/complete", result="已办",
                  delivery="window")  # fmt: skip
    assert answer.status_code == 404
    prefix = "case_event:" + other.id[5:]
    assert not [r for r in store_of(net).changes()["results"] if r["id"].startswith(prefix)]


def copied_to(case: Case, origin: Origin, village: str, now: datetime) -> Case:
    """A copy of ``case`` opened by another village's kiosk."""
    return msgspec.structs.replace(
        case,
        id=case_id(origin, 1),
        origin=origin,
        counter=1,
        village=village,
        handling_unit=village,
        hlc=Hlc(int(now.timestamp() * 1000), 0, origin.key).encode(),
        wall_time=now,
        case_number=case_number(origin, 1, local_date(now)),
        applicant=Person(name="王五", id_number=resident_id("50010919800101003"),
                         phone="13700137000"),
    )  # fmt: skip


# --- resubmitting after a return -------------------------------------------------------------


def test_the_township_returns_a_case_with_a_one_time_notice(net: Network) -> None:
    c, number = net.client, cases["window"]
    form(c, "/sync", back="/cases")
    village = village_database(A)
    case = case_from_doc(store_of(net).get(id_of(net, number)))
    assert net.has(village, case.id)
    now = datetime.now(UTC)
    stamp = Hlc(int(now.timestamp() * 1000) + 1000, 0, TOWNSHIP.key)
    notice = Returned(
        missing=(
            MissingMaterial(name="经营场所证明", key="premises_proof", note="须有产权人签字"),
            MissingMaterial(name="经营场所照片", note="门头照片一张"),
        ),
        reason="经营场所证明缺产权人签字",
        notice_no="JG-2026-0042",
    )
    received = new_event(case, Received(receiver=T, received_at=now), origin=TOWNSHIP,
                         counter=1, hlc=stamp, wall_time=now, author="staff_t")  # fmt: skip
    returned = new_event(case, notice, origin=TOWNSHIP, counter=2,
                         hlc=stamp.successor(TOWNSHIP.key), wall_time=now,
                         author="staff_t")  # fmt: skip
    for event in (received, returned):
        save_document(net.t[village], event_to_doc(event))
    form(c, "/sync", back="/cases")
    poll(lambda: state_of(net, number).status is CaseStatus.RETURNED, "the returned case", 5)
    page = case_page(c, number)
    assert 'id="returned-notice"' in page and "JG-2026-0042" in page
    assert "经营场所证明缺产权人签字" in page and "门头照片一张" in page
    assert 'id="resubmit-form"' in page
    assert 'name="provided" value="premises_proof"' in page
    assert 'name="provided" value="#1"' in page


def test_resubmission_needs_every_material_of_the_notice(net: Network) -> None:
    c, number = net.client, cases["window"]
    path = f"/cases/{number}/resubmit"
    none = form(c, path, note="")
    assert none.status_code == 400 and "请逐项勾选" in none.text
    wrong = form(c, path, provided="id_card")
    assert wrong.status_code == 400 and "不在退回告知书所列的材料中" in wrong.text
    part = form(c, path, provided="premises_proof")
    assert part.status_code == 400 and "还缺: 经营场所照片" in part.text
    assert 'id="err-resubmit"' in part.text and 'value="premises_proof" checked' in part.text
    assert not events(net, number, "resubmitted")
    assert state_of(net, number).status is CaseStatus.RETURNED


def test_resubmit_once_and_it_reaches_the_township(net: Network) -> None:
    c, number = net.client, cases["window"]
    path = f"/cases/{number}/resubmit"
    data = {"provided": ["premises_proof", "#1"], "note": "已补签字和照片"}
    done = c.post(path, data={**data, "_csrf_token": c.cookies[base.CSRF]},
                  follow_redirects=False)  # fmt: skip
    assert done.status_code in (302, 303) and done.headers["location"] == f"/cases/{number}"
    assert "已补正并重新提交" in case_page(c, number)
    again = c.post(path, data={**data, "_csrf_token": c.cookies[base.CSRF]},
                   follow_redirects=False)  # fmt: skip
    assert again.status_code in (302, 303) and "未重复保存" in case_page(c, number)
    written = events(net, number, "resubmitted")
    assert len(written) == 1
    assert written[0]["payload"]["provided"] == ["premises_proof"]
    assert written[0]["payload"]["note"] == "已补签字和照片"
    state = state_of(net, number)
    assert state.status is CaseStatus.SUBMITTED and state.returns == 1 and state.notice is None
    assert {m.key: m.status.value for m in state.materials}["premises_proof"] == "provided"
    assert not state.conflicts
    page = case_page(c, number)
    assert 'id="resubmit-form"' not in page and "补正后重新提交" in page  # in the timeline
    form(c, "/sync", back="/cases")
    event_id = written[0]["_id"]
    assert net.has(village_database(A), event_id)
    poll(lambda: net.has("township", event_id), "the resubmission in the township database")


def test_resubmission_is_refused_when_the_case_was_not_returned(net: Network) -> None:
    number = cases["spot"]
    answer = form(net.client, f"/cases/{number}/resubmit", provided="id_card")
    assert answer.status_code == 400 and "只有被镇街退回补正的办件才能补正提交" in answer.text
    assert not events(net, number, "resubmitted")


# --- rating ----------------------------------------------------------------------------------


def test_rating_is_refused_on_an_open_case(net: Network) -> None:
    number = cases["window"]  # resubmitted: open again
    answer = form(net.client, f"/cases/{number}/rate", level="5")
    assert answer.status_code == 400 and "办结 (或不予受理) 后才能请群众评价" in answer.text
    assert not events(net, number, "rated")
    assert 'id="rate-form"' not in case_page(net.client, number)


@pytest.mark.parametrize("level", ["0", "6", "很好", ""])
def test_a_level_out_of_range_is_refused(net: Network, level: str) -> None:
    number = cases["spot"]
    answer = form(net.client, f"/cases/{number}/rate", level=level)
    assert answer.status_code == 400 and 'id="err-rate"' in answer.text
    assert "请选择评价等级" in answer.text
    assert not events(net, number, "rated")


def test_an_unknown_tag_is_refused(net: Network) -> None:
    number = cases["spot"]
    answer = form(net.client, f"/cases/{number}/rate", level="5", tags="很棒")
    assert answer.status_code == 400 and "没有这个评价标签" in answer.text
    assert not events(net, number, "rated")


def test_rate_once_and_a_second_rating_is_refused(net: Network) -> None:
    c, number = net.client, cases["spot"]
    page = case_page(c, number)
    for label in ("非常满意", "满意", "基本满意", "不满意", "非常不满意"):
        assert label in page
    data = {"level": "5", "tags": ["态度好", "效率高"], "text": "很快就办好了"}
    done = c.post(f"/cases/{number}/rate", data={**data, "_csrf_token": c.cookies[base.CSRF]},
                  follow_redirects=False)  # fmt: skip
    assert done.status_code in (302, 303)
    page = case_page(c, number)
    assert "已保存评价: 非常满意" in page and 'id="rate-form"' not in page
    assert 'id="ratings"' in page and "很快就办好了" in page
    again = c.post(f"/cases/{number}/rate", data={**data, "_csrf_token": c.cookies[base.CSRF]},
                   follow_redirects=False)  # fmt: skip
    assert again.status_code in (302, 303) and "未重复保存" in case_page(c, number)
    other = form(c, f"/cases/{number}/rate", level="1", text="改主意了")
    assert other.status_code == 400 and "每件只能评价一次" in other.text
    rated = events(net, number, "rated")
    assert len(rated) == 1
    payload = rated[0]["payload"]
    assert payload["level"] == 5 and payload["channel"] == "kiosk"
    assert payload["tags"] == ["态度好", "效率高"] and payload["anonymous"] is False
    state = state_of(net, number)
    assert [(r.level, r.channel.value) for r in state.ratings] == [(5, "kiosk")]
    assert not state.follow_up_open


@pytest.mark.parametrize(
    ("level", "label", "anonymous"),
    [("4", "满意", ""), ("3", "基本满意", ""), ("2", "不满意", ""), ("1", "非常不满意", "1")],
)
def test_every_level_and_a_bad_rating_goes_to_follow_up(
    net: Network, level: str, label: str, anonymous: str
) -> None:
    c = net.client
    number = open_case(c, DOCTOR, 10 + int(level))
    form(c, f"/cases/{number}/complete", result="已办结", delivery="village_agent",
         handed_over="1")  # fmt: skip
    extra = {"anonymous": anonymous} if anonymous else {}
    done = form(c, f"/cases/{number}/rate", level=level, text="", **extra)
    assert done.status_code in (302, 303)
    page = case_page(c, number)
    assert f"已保存评价: {label}" in page
    state = state_of(net, number)
    assert [r.level for r in state.ratings] == [int(level)]
    rated = events(net, number, "rated")[0]["payload"]
    assert rated["anonymous"] is bool(anonymous)
    if int(level) <= 2:
        assert "这是差评" in page and "回访整改名单" in page and 'class="flash warn"' in page
        assert '">差评</span>' in page
        assert state.follow_up_open and 'id="follow-up"' in page
        assert ("匿名评价不回访" in page) is bool(anonymous)
    else:
        assert '">差评</span>' not in page and "回访整改名单" not in page
        assert not state.follow_up_open


def test_ratings_and_completions_sync_up(net: Network) -> None:
    form(net.client, "/sync", back="/cases")
    rated = events(net, cases["spot"], "rated")[0]["_id"]
    completed = events(net, cases["spot"], "completed")[0]["_id"]
    assert net.has(village_database(A), rated) and net.has(village_database(A), completed)
    poll(
        lambda: net.has("township", rated) and net.has("township", completed),
        "the completion and the rating in the township database",
    )
