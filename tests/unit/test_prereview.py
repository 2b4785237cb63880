"""Pre-review (预审): blocking rules, commitments in working days, the one-time notice."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import msgspec
import pytest

from core.calendar import WorkCalendar
from core.cases import CHINA_TIME, MaterialStatus, Origin, Person, new_case
from core.catalogue import CatalogueItem, Material, Mode
from core.clock import Hlc
from core.errors import InvalidInput
from core.prereview import MaterialInput, PreReview, materials_states, prereview

CATALOGUE = Path(__file__).resolve().parents[2] / "central" / "demo" / "catalogue.json"
CAL = WorkCalendar()
TODAY = date(2026, 11, 30)  # a Monday

P = MaterialStatus.PROVIDED
M = MaterialStatus.MISSING
F = MaterialStatus.TO_FOLLOW


def item(name: str) -> CatalogueItem:
    items = json.loads(CATALOGUE.read_text(encoding="utf-8"))["items"]
    return msgspec.convert(next(i for i in items if i["name"] == name), CatalogueItem)


SHOP = item("个体工商户设立登记")  # premises_proof may follow within 5 working days
ALLOWANCE = item("高龄津贴申请")  # nothing may follow
BIRTH = item("生育登记")  # hukou_book optional


def review(
    it: CatalogueItem, *entries: MaterialInput, today: date = TODAY, cal: WorkCalendar = CAL
) -> PreReview:
    return prereview(it, entries, today=today, calendar=cal)


def inp(
    key: str, status: MaterialStatus, deadline: date | None = None, **kw: object
) -> MaterialInput:
    return MaterialInput(key=key, status=status, deadline=deadline, **kw)  # type: ignore[arg-type]


def all_provided(it: CatalogueItem) -> list[MaterialInput]:
    return [inp(m.key, P) for m in it.materials]


def test_everything_provided_can_submit() -> None:
    r = review(SHOP, *all_provided(SHOP))
    assert r.can_submit and r.blocking == () and r.commitments == ()
    assert [line.key for line in r.lines] == ["application", "id_card", "premises_proof"]
    premises = r.lines[2]
    assert premises.required and premises.may_follow and premises.status is P
    notice = r.notice()
    assert notice.complete and notice.lines == ()
    assert "材料齐全" in notice.text


def test_required_missing_that_may_not_follow_blocks() -> None:
    r = review(ALLOWANCE, inp("id_card", P), inp("hukou_book", P), inp("bank_card", M))
    assert not r.can_submit
    assert [b.key for b in r.blocking] == ["bank_card"]
    assert "不允许承诺后补" in r.blocking[0].message
    assert r.blocking[0].message_en


def test_unlisted_material_counts_as_missing() -> None:
    r = review(ALLOWANCE, inp("id_card", P))
    assert [line.status for line in r.lines] == [P, M, M]
    assert {b.key for b in r.blocking} == {"hukou_book", "bank_card"}


def test_required_missing_that_may_follow_still_blocks_until_committed() -> None:
    r = review(SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", M))
    assert not r.can_submit
    assert "可承诺后补" in r.blocking[0].message


def test_optional_missing_does_not_block_but_is_in_notice() -> None:
    r = review(BIRTH, inp("id_card", P), inp("hukou_book", M))
    assert r.can_submit
    notice = r.notice()
    assert [line.key for line in notice.lines] == ["hukou_book"]
    assert not notice.lines[0].required
    assert "非必需" in notice.text


def test_to_follow_on_material_that_may_not_follow_blocks() -> None:
    r = review(
        ALLOWANCE,
        inp("id_card", P),
        inp("hukou_book", P),
        inp("bank_card", F, date(2026, 12, 3)),
    )
    assert not r.can_submit and r.commitments == ()
    assert r.blocking[0].key == "bank_card"
    assert r.blocking[0].message == "该材料不允许承诺后补"


def test_to_follow_within_limit_is_a_commitment() -> None:
    r = review(
        SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", F, date(2026, 12, 4))
    )
    assert r.can_submit
    (c,) = r.commitments
    assert (c.key, c.due, c.working_days, c.provisional) == (
        "premises_proof",
        date(2026, 12, 4),
        4,
        False,
    )
    line = r.lines[2]
    assert line.deadline == date(2026, 12, 4) and line.latest == date(2026, 12, 7)


def test_to_follow_without_deadline_gets_the_latest_allowed() -> None:
    r = review(SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", F))
    assert r.can_submit
    assert r.commitments[0].due == date(2026, 12, 7)  # 5 working days after Mon 30 Nov
    assert r.commitments[0].working_days == 5


def test_deadline_beyond_follow_days_blocks() -> None:
    r = review(
        SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", F, date(2026, 12, 8))
    )
    assert not r.can_submit and r.commitments == ()
    assert "超过5个工作日" in r.blocking[0].message
    assert "2026年12月7日" in r.blocking[0].message


@pytest.mark.parametrize("deadline", [date(2026, 11, 29), TODAY])
def test_deadline_in_the_past_or_today_blocks(deadline: date) -> None:
    r = review(SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", F, deadline))
    assert not r.can_submit
    assert "应晚于今天" in r.blocking[0].message


def test_national_day_2026_holiday_is_skipped() -> None:
    today = date(2026, 9, 30)  # the day before the 1–7 October holiday
    r = review(
        SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", F), today=today
    )
    # 8 Oct, 9 Oct, Sat 10 Oct (make-up working day), 12 Oct, 13 Oct
    assert r.commitments[0].due == date(2026, 10, 13)
    assert not r.commitments[0].provisional
    late = review(
        SHOP,
        inp("application", P),
        inp("id_card", P),
        inp("premises_proof", F, date(2026, 10, 14)),
        today=today,
    )
    assert not late.can_submit


def test_deadline_into_provisional_2027() -> None:
    today = date(2026, 12, 28)
    r = review(
        SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", F), today=today
    )
    (c,) = r.commitments
    assert c.due == date(2027, 1, 5)  # 1 Jan 2027 is a statutory holiday in the provisional rule
    assert c.provisional and r.lines[2].provisional
    notice = r.notice()
    assert notice.lines[0].provisional
    assert "暂定" in notice.text
    # Within 2026 the same review is not provisional.
    early = review(
        SHOP,
        inp("application", P),
        inp("id_card", P),
        inp("premises_proof", F, date(2026, 12, 30)),
        today=today,
    )
    assert not early.commitments[0].provisional


def test_announced_2027_is_no_longer_provisional() -> None:
    cal = WorkCalendar(announced_years=frozenset({2027}))
    r = review(
        SHOP,
        inp("application", P),
        inp("id_card", P),
        inp("premises_proof", F),
        today=date(2026, 12, 28),
        cal=cal,
    )
    assert not r.commitments[0].provisional


def test_notice_lists_everything_at_once() -> None:
    r = review(SHOP, inp("application", M), inp("premises_proof", F, date(2026, 12, 2)))
    assert not r.can_submit  # application and id_card missing
    notice = r.notice()
    assert notice.item_name == "个体工商户设立登记" and notice.item_code == SHOP.code
    assert notice.issued == TODAY
    assert [(line.key, line.status) for line in notice.lines] == [
        ("application", M),
        ("id_card", M),
        ("premises_proof", F),
    ]
    id_card = notice.lines[1]
    assert id_card.standard == "在有效期内，本人持证"
    text = notice.text
    assert text.startswith("一次性告知书")
    assert "个体工商户设立登记" in text
    for name in ("个体工商户登记（备案）申请书", "居民身份证", "经营场所使用证明"):
        assert name in text
    assert "要求：在有效期内，本人持证" in text
    assert "2026年12月2日前补交" in text
    assert text.count("\n1. ") == 1 and "\n3. " in text
    missing = notice.missing_materials()
    assert [m.key for m in missing] == ["application", "id_card", "premises_proof"]
    # the notice converts to plain data for printing or sending
    assert msgspec.to_builtins(notice)["lines"][2]["deadline"] == "2026-12-02"


def test_notes_and_attachments_carried() -> None:
    r = review(
        SHOP,
        inp("application", P, attachments=("att:1",), note=" 已拍照 "),
        inp("id_card", P),
        inp("premises_proof", F),
    )
    assert r.lines[0].attachments == ("att:1",) and r.lines[0].note == "已拍照"


def test_unknown_key_is_invalid_input_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        review(SHOP, inp("application", P), inp("passport", P))
    (err,) = exc.value.errors
    assert err.field == "materials[1].key"
    assert "passport" in err.message and "个体工商户设立登记" in err.message
    assert err.message_en


def test_material_listed_twice_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as exc:
        review(SHOP, inp("id_card", P), inp("application", P), inp("id_card", M))
    (err,) = exc.value.errors
    assert err.field == "materials[2].key" and "重复" in err.message


def test_bad_status_and_stray_deadline_are_invalid_input() -> None:
    with pytest.raises(InvalidInput) as exc:
        review(
            SHOP,
            MaterialInput(key="id_card", status="lost"),  # type: ignore[arg-type]
            inp("application", P, date(2026, 12, 2)),
        )
    assert [e.field for e in exc.value.errors] == ["materials[0].status", "materials[1].deadline"]


def test_status_given_as_plain_string_is_accepted() -> None:
    entries = [MaterialInput(key=m.key, status="provided") for m in SHOP.materials]  # type: ignore[arg-type]
    assert review(SHOP, *entries).can_submit


def test_materials_states_go_on_a_valid_case() -> None:
    r = review(SHOP, inp("application", P), inp("id_card", P), inp("premises_proof", F))
    states = materials_states(r)
    assert [(s.key, s.status, s.deadline) for s in states] == [
        ("application", P, None),
        ("id_card", P, None),
        ("premises_proof", F, date(2026, 12, 7)),
    ]
    origin = Origin("500109102001", "k7f3a9")
    when = datetime(2026, 11, 30, 9, 30, tzinfo=CHINA_TIME)
    case = new_case(
        origin=origin,
        counter=1,
        hlc=Hlc(int(when.timestamp() * 1000), 0, origin.key),
        wall_time=when,
        author="agent01",
        village="500109102001",
        township="500109102000",
        item=SHOP,
        catalogue_version=1,
        applicant=Person(name="张三", id_number="500109193805120013", phone="13800000000"),
        mode=Mode.WINDOW,
        handling_unit="500109102000",
        materials=states,
    )
    assert case.materials == states


def test_materials_states_refused_while_blocked() -> None:
    r = review(ALLOWANCE, inp("id_card", P))
    with pytest.raises(InvalidInput) as exc:
        materials_states(r)
    assert [e.field for e in exc.value.errors] == ["materials.hukou_book", "materials.bank_card"]


def test_item_without_materials() -> None:
    bare = msgspec.structs.replace(SHOP, materials=())
    r = review(bare)
    assert r.can_submit and r.lines == () and r.notice().complete
    assert materials_states(r) == ()


def test_material_without_follow_days_cannot_follow() -> None:
    odd = msgspec.structs.replace(
        SHOP, materials=(Material(key="x", name="某材料", may_follow=True, follow_days=None),)
    )
    r = review(odd, inp("x", F, date(2026, 12, 2)))
    assert not r.can_submit
