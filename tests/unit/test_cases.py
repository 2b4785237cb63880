"""Case documents: ids that never collide, JSON round trips, intake validation."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import msgspec
import pytest

from core.cases import (
    CHINA_TIME,
    Case,
    CaseEvent,
    CommitmentFulfilled,
    Completed,
    ConflictResolved,
    Delivery,
    EventKind,
    MaterialState,
    MaterialStatus,
    MissingMaterial,
    Organisation,
    Origin,
    Person,
    Rated,
    RatingChannel,
    Received,
    Representative,
    Returned,
    Transferred,
    case_from_doc,
    case_id,
    case_id_from_number,
    case_number,
    case_to_doc,
    event_from_doc,
    event_id,
    event_id_range,
    event_to_doc,
    is_bad_rating,
    local_date,
    new_case,
    new_event,
    new_instance_id,
    parse_case_id,
    parse_doc,
    parse_event_id,
)
from core.catalogue import CaseType, CatalogueItem, Eligibility, HandlingLevel, Kind, Material, Mode
from core.clock import Hlc, HlcClock
from core.errors import InvalidInput

VILLAGE = "500109102001"
OTHER_VILLAGE = "500109102002"
TOWNSHIP = "500109102000"
WHEN = datetime(2026, 11, 30, 9, 30, tzinfo=CHINA_TIME)
ID_NUMBER = "500109193805120013"
ID_NUMBER_X = "50010920010815005x"
CREDIT_CODE = "91500109MA60XK3P07"

ITEM = CatalogueItem(
    code="500109000015",
    name="高龄津贴申请",
    kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP,
    modes=(Mode.DOOR_TO_DOOR, Mode.AGENCY),
    department="澄江镇社会事务办",
    case_type=CaseType.PROMISED,
    promised_limit_days=15,
    legal_limit_days=20,
    door_to_door_for=(Eligibility.ELDERLY,),
    materials=(
        Material(key="id_card", name="身份证"),
        Material(key="hukou", name="户口簿"),
        Material(key="bank_card", name="银行卡", may_follow=True, follow_days=10),
    ),
)


def person(**changes: object) -> Person:
    base = Person(
        name="张三",
        id_number=ID_NUMBER,
        phone="13800000000",
        address="澄江镇演示村1组",
        flags=(Eligibility.ELDERLY,),
    )
    return msgspec.structs.replace(base, **changes)


def checklist() -> tuple[MaterialState, ...]:
    return (
        MaterialState(key="id_card", name="身份证", status=MaterialStatus.PROVIDED),
        MaterialState(key="hukou", name="户口簿", status=MaterialStatus.PROVIDED),
        MaterialState(
            key="bank_card",
            name="银行卡",
            status=MaterialStatus.TO_FOLLOW,
            deadline=date(2026, 12, 14),
        ),
    )


def make_case(origin: Origin, counter: int, **changes: object) -> Case:
    args: dict[str, object] = {
        "origin": origin,
        "counter": counter,
        "hlc": Hlc(int(WHEN.timestamp() * 1000), 0, origin.key),
        "wall_time": WHEN,
        "author": "agent01",
        "village": VILLAGE,
        "township": TOWNSHIP,
        "item": ITEM,
        "catalogue_version": 3,
        "applicant": person(),
        "mode": Mode.DOOR_TO_DOOR,
        "handling_unit": TOWNSHIP,
        "materials": checklist(),
        "mode_reason": "申请人年满80周岁，可预约上门办",
    }
    args.update(changes)
    return new_case(**args)  # type: ignore[arg-type]


KIOSK = Origin(VILLAGE, "k7f3a9")
TOWN = Origin(TOWNSHIP, "t0wn01")


def stamp(origin: Origin, offset_ms: int = 0) -> Hlc:
    return Hlc(int(WHEN.timestamp() * 1000) + offset_ms, 0, origin.key)


# --- ids ------------------------------------------------------------------------------------


def test_ids_have_their_type_as_prefix_and_parse_back() -> None:
    cid = case_id(KIOSK, 12)
    assert cid == "case:500109102001:k7f3a9:00000012"
    assert parse_case_id(cid) == (KIOSK, 12)
    eid = event_id(cid, TOWN, 345)
    assert eid == "case_event:500109102001:k7f3a9:00000012:500109102000:t0wn01:00000345"
    assert parse_event_id(eid) == (cid, TOWN, 345)
    start, end = event_id_range(cid)
    assert start <= eid < end
    assert not start <= event_id(case_id(KIOSK, 120), TOWN, 1) < end
    assert parse_case_id(case_id(KIOSK, 123_456_789)) == (KIOSK, 123_456_789)


@pytest.mark.parametrize(
    "bad",
    [
        "case:500109102001:k7f3a9:12",  # not canonical
        "case:500109102001:K7F3A9:00000012",  # instance upper case
        "case:5001091020:k7f3a9:00000012",
        "case_event:500109102001:k7f3a9:00000012",
        "case:500109102001:k7f3a9:00000000",
        "case:500109102001:k7f3a9:000000012",  # zero-padded beyond the width
    ],
)
def test_malformed_case_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_case_id(bad)


def test_ids_never_collide_across_kiosks_and_a_re_enrolled_kiosk() -> None:
    """Two kiosks of one village, a second village, and the first kiosk's PC replaced.

    Each writes documents numbered from 1; the replaced PC starts again at 1 after enrolment.
    """
    old_pc = Origin(VILLAGE, "k7f3a9")
    second_kiosk = Origin(VILLAGE, "q2m8hx")
    other_village = Origin(OTHER_VILLAGE, "k7f3a9")  # same instance id by chance
    new_pc = Origin(VILLAGE, new_instance_id())  # re-enrolled: a fresh instance id
    assert new_pc.instance != old_pc.instance
    township = Origin(TOWNSHIP, "t0wn01")
    origins = [old_pc, second_kiosk, other_village, new_pc, township]
    case_ids: set[str] = set()
    event_ids: set[str] = set()
    numbers: set[str] = set()
    for origin in origins:
        for counter in range(1, 51):
            cid = case_id(origin, counter)
            case_ids.add(cid)
            numbers.add(case_number(origin, counter, date(2026, 11, 30)))
            for writer in origins:
                event_ids.add(event_id(cid, writer, counter))
    assert len(case_ids) == len(origins) * 50
    assert len(numbers) == len(origins) * 50
    assert len(event_ids) == len(origins) * 50 * len(origins)
    # Full documents from the old and the new PC, both counter 1, same minute, same applicant.
    a = make_case(old_pc, 1)
    b = make_case(new_pc, 1)
    assert a.id != b.id and a.case_number != b.case_number


def test_new_instance_ids_use_unambiguous_letters() -> None:
    ids = {new_instance_id() for _ in range(200)}
    assert len(ids) == 200
    for instance in ids:
        assert len(instance) == 8
        assert not set(instance) & set("ilou")
        Origin(VILLAGE, instance)


def test_origin_is_checked() -> None:
    with pytest.raises(ValueError):
        Origin("5001", "k7f3a9")
    with pytest.raises(ValueError):
        Origin(VILLAGE, "K7F3A9")
    with pytest.raises(ValueError):
        Origin(VILLAGE, "ab")
    assert KIOSK.key == "500109102001:k7f3a9"


def test_case_number_reads_back_to_the_case_id() -> None:
    number = case_number(KIOSK, 12, date(2026, 11, 30))
    assert number == "500109102001-20261130-K7F3A9-0012"
    assert case_id_from_number(number) == case_id(KIOSK, 12)
    assert case_id_from_number(" " + number.lower() + " ") == case_id(KIOSK, 12)
    assert case_id_from_number("500109102001-20261130-K7F3A9-12345") == case_id(KIOSK, 12345)
    for bad in ["", "500109102001-20261130-K7F3A9", "500109102001-20261331-K7F3A9-0012"]:
        with pytest.raises(InvalidInput) as caught:
            case_id_from_number(bad)
        assert caught.value.errors[0].message == "办件编号格式不正确"


# --- documents ------------------------------------------------------------------------------


def test_new_case_copies_the_item_version_and_normalises() -> None:
    case = make_case(KIOSK, 1, applicant=person(id_number=ID_NUMBER_X, name=" 李四 "))
    assert case.id == "case:500109102001:k7f3a9:00000001"
    assert case.case_number == "500109102001-20261130-K7F3A9-0001"
    assert (case.item_code, case.catalogue_version, case.promised_limit_days) == (
        "500109000015",
        3,
        15,
    )
    assert case.case_type is CaseType.PROMISED
    assert case.handling_level is HandlingLevel.TOWNSHIP
    assert isinstance(case.applicant, Person)
    assert case.applicant.id_number == "50010920010815005X"
    assert case.applicant.name == "李四"
    assert case.type == "case" and case.schema_version == 1


def test_case_json_round_trip() -> None:
    case = make_case(
        KIOSK,
        7,
        representative=Representative(
            name="张小三", id_number="500109199203010068", phone="13900000000", relation="子女"
        ),
    )
    doc = case_to_doc(case)
    assert doc["_id"] == case.id and doc["type"] == "case"
    assert doc["wall_time"] == "2026-11-30T09:30:00+08:00"
    assert doc["applicant"]["kind"] == "person"
    assert doc["materials"][2] == {
        "key": "bank_card",
        "name": "银行卡",
        "status": "to_follow",
        "required": True,
        "deadline": "2026-12-14",
        "attachments": [],
        "note": "",
    }
    wire = json.loads(json.dumps(doc, ensure_ascii=False))
    wire["_rev"] = "1-0123456789abcdef0123456789abcdef"  # CouchDB's fields are ignored
    assert case_from_doc(wire) == case
    assert parse_doc(wire) == case


def test_organisation_applicant_round_trip() -> None:
    org = Organisation(
        name="北碚区演示农业合作社",
        credit_code=CREDIT_CODE.lower(),
        contact_name="王五",
        contact_phone="023-68000000",
    )
    case = make_case(KIOSK, 2, applicant=org, mode=Mode.AGENCY)
    assert isinstance(case.applicant, Organisation)
    assert case.applicant.credit_code == CREDIT_CODE
    assert case_from_doc(json.loads(json.dumps(case_to_doc(case)))) == case


def test_event_json_round_trip_for_each_shape() -> None:
    case = make_case(KIOSK, 1)
    payloads = [
        Received(
            receiver=TOWNSHIP,
            received_at=WHEN + timedelta(days=2),
            sender=KIOSK.key,
            sender_skew_ms=86_400_001,
            skew_clamped=True,
        ),
        Returned(
            missing=(
                MissingMaterial(key="hukou", name="户口簿", note="需户主页"),
                MissingMaterial(name="村委会证明"),
            ),
            reason="材料不全",
        ),
        Completed(result="已批准，每月发放高龄津贴", delivery=Delivery.VILLAGE_AGENT),
        Rated(level=2, channel=RatingChannel.KIOSK, tags=("态度",), text="等太久"),
        CommitmentFulfilled(keys=("bank_card",)),
        ConflictResolved(event_ids=("case_event:x",), note="以镇街退回为准"),
    ]
    for n, payload in enumerate(payloads, start=2):
        event = new_event(
            case,
            payload,
            origin=TOWN,
            counter=n,
            hlc=stamp(TOWN, n),
            wall_time=WHEN + timedelta(hours=n),
            author="staff01",
        )
        doc = event_to_doc(event)
        assert doc["type"] == "case_event"
        assert doc["kind"] == payload.kind.value == doc["payload"]["kind"]
        assert (doc["village"], doc["township"], doc["case_id"]) == (VILLAGE, TOWNSHIP, case.id)
        wire = json.loads(json.dumps(doc, ensure_ascii=False))
        assert event_from_doc(wire) == event
        assert parse_doc(wire) == event
        assert event.kind is EventKind(payload.kind.value)
    assert parse_doc({"_id": "unit:500109102001", "type": "unit"}) is None


def test_event_with_inconsistent_kind_is_refused() -> None:
    case = make_case(KIOSK, 1)
    event = new_event(
        case,
        Completed(result="办结", delivery=Delivery.WINDOW),
        origin=KIOSK,
        counter=2,
        hlc=stamp(KIOSK, 1),
        wall_time=WHEN,
        author="agent01",
    )
    doc = event_to_doc(event)
    doc["kind"] = "returned"
    with pytest.raises(InvalidInput):
        event_from_doc(doc)


@pytest.mark.parametrize(
    "change",
    [
        {"_id": "case:500109102001:k7f3a9:00000002"},  # id does not match the counter
        {"case_number": "500109102001-20261130-K7F3A9-0002"},
        {"hlc": Hlc(0, 0, "500109102001:other1").encode()},  # stamp of another writer
        {"hlc": "yesterday"},
        {"wall_time": "2026-11-30T09:30:00"},  # no time zone
        {"village": "500109104001"},  # a village of another township
        {"township": "500109102001"},  # a village is no township
        {"schema_version": 2},  # newer than this software
        {"counter": 0},
        {"type": "case_event"},
        {"applicant": {"kind": "robot", "name": "x"}},
    ],
)
def test_malformed_case_documents_are_refused(change: dict[str, object]) -> None:
    doc = case_to_doc(make_case(KIOSK, 1))
    doc.update(change)
    with pytest.raises(InvalidInput) as caught:
        case_from_doc(doc)
    assert "文档格式有误" in caught.value.errors[0].message


def test_an_event_must_be_written_by_its_hlc_node() -> None:
    case = make_case(KIOSK, 1)
    with pytest.raises(InvalidInput):
        new_event(
            case,
            Completed(result="办结", delivery=Delivery.WINDOW),
            origin=KIOSK,
            counter=2,
            hlc=stamp(TOWN),
            wall_time=WHEN,
            author="agent01",
        )


def test_a_township_case_has_no_village() -> None:
    case = make_case(TOWN, 1, village=None)
    assert case.village is None
    assert case_from_doc(case_to_doc(case)) == case


# --- intake validation ----------------------------------------------------------------------


def test_intake_lists_every_bad_field_at_once() -> None:
    bad_applicant = person(name=" ", id_number="500109193805120010", phone="12")
    representative = Representative(name="代理人", id_number="123")
    materials = (
        MaterialState(key="id_card", name="身份证", status=MaterialStatus.PROVIDED),
        MaterialState(
            key="hukou", name="户口簿", status=MaterialStatus.TO_FOLLOW, deadline=date(2026, 12, 1)
        ),
        MaterialState(
            key="bank_card",
            name="银行卡",
            status=MaterialStatus.TO_FOLLOW,
            deadline=date(2026, 11, 29),
        ),
        MaterialState(key="photo", name="照片", status=MaterialStatus.PROVIDED),
    )
    with pytest.raises(InvalidInput) as caught:
        make_case(
            KIOSK, 1, applicant=bad_applicant, representative=representative, materials=materials
        )
    fields = [e.field for e in caught.value.errors]
    assert fields == [
        "applicant.name",
        "applicant.id_number",
        "applicant.phone",
        "representative.id_number",
        "materials[1].status",  # 户口簿 may not follow
        "materials[2].deadline",  # in the past
        "materials[3].key",  # not on the item's list
    ]
    messages = {e.field: e.message for e in caught.value.errors}
    assert messages["applicant.id_number"] == "身份证号码校验位不正确，请核对"
    assert messages["materials[1].status"] == "“户口簿”不允许承诺后补"


def test_intake_needs_a_phone_somewhere() -> None:
    with pytest.raises(InvalidInput) as caught:
        make_case(KIOSK, 1, applicant=person(phone=""))
    assert caught.value.errors[0].message == "请至少留一个联系电话（申请人或代理人）"
    represented = make_case(
        KIOSK,
        1,
        applicant=person(phone=""),
        representative=Representative(
            name="张小三", id_number="500109199203010068", phone="13900000000"
        ),
    )
    assert represented.representative is not None


def test_intake_refuses_a_bad_credit_code() -> None:
    org = Organisation(name="合作社", credit_code="91500109MA60XK3P08", contact_phone="13800000000")
    with pytest.raises(InvalidInput) as caught:
        make_case(KIOSK, 1, applicant=org)
    assert [e.field for e in caught.value.errors] == ["applicant.credit_code"]


def test_a_deadline_goes_with_to_follow_only() -> None:
    with pytest.raises(ValueError):
        MaterialState(key="a", name="甲", status=MaterialStatus.TO_FOLLOW)
    with pytest.raises(ValueError):
        MaterialState(key="a", name="甲", status=MaterialStatus.PROVIDED, deadline=date(2027, 1, 1))


def test_events_name_only_materials_of_their_case() -> None:
    case = make_case(KIOSK, 1)
    with pytest.raises(InvalidInput) as caught:
        new_event(
            case,
            CommitmentFulfilled(keys=("passport",)),
            origin=TOWN,
            counter=2,
            hlc=stamp(TOWN, 5),
            wall_time=WHEN,
            author="staff01",
        )
    assert caught.value.errors[0].message == "材料“passport”不在本件的材料清单中"
    with pytest.raises(InvalidInput):
        new_event(
            case,
            Transferred(to_township=TOWNSHIP, new_case_id=case_id(TOWN, 9)),
            origin=TOWN,
            counter=3,
            hlc=stamp(TOWN, 6),
            wall_time=WHEN,
            author="staff01",
        )


def test_a_returned_event_needs_at_least_one_missing_material() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"kind": "returned", "missing": []}, Returned)


def test_ratings_and_local_dates() -> None:
    assert [is_bad_rating(level) for level in range(1, 6)] == [True, True, False, False, False]
    late_utc = datetime(2026, 11, 30, 17, 0, tzinfo=CHINA_TIME) - timedelta(hours=8)
    assert local_date(late_utc.astimezone(CHINA_TIME)) == date(2026, 11, 30)
    assert local_date(datetime.fromisoformat("2026-11-30T17:00:00+00:00")) == date(2026, 12, 1)


def test_clock_and_documents_together() -> None:
    """A kiosk stamps its case and events with its clock; each stamp names the kiosk."""
    ms = int(WHEN.timestamp() * 1000)
    clock = HlcClock(KIOSK.key, lambda: ms)
    case = make_case(KIOSK, 1, hlc=clock.tick())
    event = new_event(
        case,
        Completed(result="办结", delivery=Delivery.WINDOW),
        origin=KIOSK,
        counter=2,
        hlc=clock.tick(after=case.stamp),
        wall_time=WHEN,
        author="agent01",
    )
    assert event.stamp > case.stamp
    assert isinstance(event, CaseEvent) and isinstance(case, Case)
