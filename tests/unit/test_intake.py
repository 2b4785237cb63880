"""Intake (core.intake): the posted form read into applicant, representative and materials,
checksums and phones reported on the right field in Chinese, routing at the counter."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.calendar import WorkCalendar
from core.cases import CHINA_TIME, MaterialStatus, Organisation, Origin, Person
from core.catalogue import CatalogueItem, Eligibility, Mode
from core.clock import Hlc
from core.intake import (
    FLAGS,
    Intake,
    choose_mode,
    counter_options,
    draft_case,
    form_field,
    handling_unit,
    new_intake_key,
    parse_intake,
    review_materials,
)
from core.routing import route_options
from tests.unit.conftest import vectors

CATALOGUE = Path(__file__).resolve().parents[2] / "central" / "demo" / "catalogue.json"
IDS = vectors("id_numbers")
CODES = vectors("credit_codes")
TODAY = date(2026, 11, 30)  # a Monday
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=CHINA_TIME)
T = "500109102000"
V = "500109102001"
ORIGIN = Origin(T, "tw01abcd")


def item(name: str) -> CatalogueItem:
    items = json.loads(CATALOGUE.read_text(encoding="utf-8"))["items"]
    return msgspec.convert(next(i for i in items if i["name"] == name), CatalogueItem)


SHOP = item("个体工商户设立登记")  # township; premises_proof may follow within 5 working days
ALLOWANCE = item("高龄津贴申请")  # district; door to door or agency
PARTY = item("入党申请受理")  # village, on the spot only


def person_form(**extra: Any) -> dict[str, Any]:
    return {
        "applicant_type": "person",
        "p_name": " 张三 ",
        "p_id": IDS["valid"][0],
        "p_phone": "13800138000",
        "m_application": "provided",
        "m_id_card": "provided",
        "m_premises_proof": "provided",
        **extra,
    }


def org_form(**extra: Any) -> dict[str, Any]:
    return {
        "applicant_type": "organisation",
        "o_name": "示范村小卖部",
        "o_code": CODES["valid"][1],
        "o_contact_name": "王五",
        "o_contact_phone": "13900000000",
        "m_application": "provided",
        "m_id_card": "provided",
        "m_premises_proof": "provided",
        **extra,
    }


def draft(intake: Intake, it: CatalogueItem = SHOP) -> Any:
    review = review_materials(intake, it, today=TODAY, calendar=WorkCalendar())
    assert intake.applicant is not None
    options = counter_options(route_options(it, intake.applicant, online=True))
    mode = choose_mode(intake, options)
    return draft_case(
        intake, it, review, options, mode, origin=ORIGIN, counter=1,
        hlc=Hlc(int(NOW.timestamp() * 1000), 0, ORIGIN.key), wall_time=NOW, author="zhang.t",
        village=None, township=T, catalogue_version=3, unit=handling_unit(it, None, T),
    )  # fmt: skip


def test_a_person_form_is_read_into_applicant_and_materials() -> None:
    intake = parse_intake(
        person_form(flags=["elderly", "nonsense"], m_premises_proof="to_follow",
                    d_premises_proof="2026-12-03", rep_on="1", rep_name="李四",
                    rep_id=IDS["valid_lowercase_x"][0], rep_relation="子女"),
        SHOP,
    )  # fmt: skip
    assert intake.errors == {}
    assert isinstance(intake.applicant, Person)
    assert intake.applicant.name == "张三" and intake.applicant.flags == (Eligibility.ELDERLY,)
    assert intake.flags == ("elderly",)
    assert intake.representative is not None
    assert intake.representative.id_number == IDS["valid_lowercase_x"][0].upper()
    by_key = {m.key: m for m in intake.materials}
    assert by_key["premises_proof"].status is MaterialStatus.TO_FOLLOW
    assert by_key["premises_proof"].deadline == date(2026, 12, 3)
    assert by_key["application"].status is MaterialStatus.PROVIDED
    assert "m_application" not in intake.values and "flags" not in intake.values


def test_empty_fields_are_refused_in_chinese() -> None:
    intake = parse_intake({"applicant_type": "person", "rep_on": "1"}, SHOP)
    assert intake.errors == {"p_name": "请填写申请人姓名", "rep_name": "请填写代理人姓名"}
    assert all(m.status is MaterialStatus.MISSING for m in intake.materials)
    org = parse_intake({"applicant_type": "organisation"}, SHOP)
    assert org.errors == {"o_name": "请填写单位名称", "o_code": "请填写统一社会信用代码"}
    assert isinstance(org.applicant, Organisation)


def test_bad_material_status_and_deadline_are_field_errors() -> None:
    intake = parse_intake(
        person_form(m_application="lost", m_premises_proof="to_follow", d_premises_proof="3.12"),
        SHOP,
    )
    assert intake.errors["m_application"] == "请选择材料情况"
    assert intake.errors["d_premises_proof"].startswith("补交期限格式不正确")
    assert [m.key for m in intake.materials] == ["id_card", "premises_proof"]


@pytest.mark.parametrize("number", IDS["valid"] + IDS["valid_lowercase_x"])
def test_valid_id_numbers_make_a_case(number: str) -> None:
    intake = parse_intake(person_form(p_id=number), SHOP)
    case = draft(intake)
    assert intake.errors == {}
    assert case is not None and case.applicant.id_number == number.upper()
    assert case.village is None and case.township == T and case.handling_unit == T
    assert case.mode is Mode.WINDOW


@pytest.mark.parametrize("bad", IDS["invalid"], ids=lambda b: b["why"])
def test_bad_id_numbers_land_on_their_field(bad: dict[str, str]) -> None:
    intake = parse_intake(person_form(p_id=bad["id"]), SHOP)
    assert draft(intake) is None
    assert set(intake.errors) == {"p_id"}
    assert any("\u4e00" <= c <= "\u9fff" for c in intake.errors["p_id"])  # said in Chinese


def test_a_bad_representative_id_lands_on_its_field() -> None:
    intake = parse_intake(
        person_form(rep_on="1", rep_name="李四", rep_id=IDS["invalid"][0]["id"]), SHOP
    )
    assert draft(intake) is None and set(intake.errors) == {"rep_id"}


@pytest.mark.parametrize("code", CODES["valid"])
def test_valid_credit_codes_make_a_case(code: str) -> None:
    intake = parse_intake(org_form(o_code=code), SHOP)
    case = draft(intake)
    assert intake.errors == {} and case is not None
    assert case.applicant.credit_code == code.upper()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bad", [b for b in CODES["invalid"] if b["code"] != b["code"].lower()], ids=lambda b: b["why"]
)
def test_bad_credit_codes_land_on_their_field(bad: dict[str, str]) -> None:
    intake = parse_intake(org_form(o_code=bad["code"]), SHOP)
    assert draft(intake) is None and set(intake.errors) == {"o_code"}


def test_lowercase_credit_codes_are_upper_cased() -> None:
    lower = next(b["code"] for b in CODES["invalid"] if b["code"] == b["code"].lower())
    intake = parse_intake(org_form(o_code=lower), SHOP)
    assert intake.applicant is not None and intake.applicant.credit_code == lower.upper()  # type: ignore[union-attr]


def test_a_phone_is_required_and_checked() -> None:
    intake = parse_intake(person_form(p_phone=""), SHOP)
    assert draft(intake) is None and "请至少留一个联系电话" in intake.errors["p_phone"]
    bad = parse_intake(org_form(o_contact_phone="12ab"), SHOP)
    assert draft(bad) is None and bad.errors == {"o_contact_phone": "电话号码格式不正确"}


def test_blocking_materials_are_left_to_the_review() -> None:
    intake = parse_intake(person_form(m_id_card="missing"), SHOP)
    review = review_materials(intake, SHOP, today=TODAY, calendar=WorkCalendar())
    assert review is not None and not review.can_submit
    assert [b.key for b in review.blocking] == ["id_card"]
    assert intake.errors == {}
    assert draft(intake) is not None  # the dry run still checks the people, not the materials


def test_form_fields_of_domain_errors() -> None:
    person = parse_intake(person_form(), SHOP)
    org = parse_intake(org_form(), SHOP)
    assert form_field("applicant.id_number", person) == "p_id"
    assert form_field("applicant.phone", org) == "o_contact_phone"
    assert form_field("applicant.credit_code", org) == "o_code"
    assert form_field("representative.id_number", person) == "rep_id"
    assert form_field("case", person) == "form"


def test_handling_units() -> None:
    assert handling_unit(PARTY, V, T) == V
    assert handling_unit(PARTY, None, T) == T  # opened at a counter
    assert handling_unit(SHOP, V, T) == T
    assert handling_unit(ALLOWANCE, None, T) == "500109000000"


def test_the_counter_offers_the_window_not_the_villages_ways() -> None:
    applicant = Person(name="张三", id_number=IDS["valid"][0], flags=(Eligibility.ELDERLY,))
    social = item("社会保障卡申领")  # on the spot or window, immediate
    at_kiosk = route_options(social, applicant, online=True)
    assert next(o for o in at_kiosk if o.recommended).mode is Mode.ON_THE_SPOT
    options = counter_options(at_kiosk)
    by_mode = {o.mode: o for o in options}
    assert not by_mode[Mode.ON_THE_SPOT].allowed and "窗口" in by_mode[Mode.ON_THE_SPOT].reason
    assert [o.mode for o in options if o.recommended] == [Mode.WINDOW]
    elderly = counter_options(route_options(ALLOWANCE, applicant, online=True))
    assert {o.mode for o in elderly if o.allowed} == {Mode.DOOR_TO_DOOR, Mode.WINDOW}
    assert not {o.mode: o for o in elderly}[Mode.AGENCY].allowed
    assert [o.mode for o in elderly if o.recommended] == [Mode.WINDOW]


def test_choosing_a_mode_checks_it_and_records_the_override() -> None:
    intake = parse_intake(person_form(mode="video", mode_note="群众要求与区局视频核验"), SHOP)
    case = draft(intake)
    assert case is not None and case.mode is Mode.VIDEO
    assert "工作人员改选视频办" in case.mode_reason and "区局视频核验" in case.mode_reason
    refused = parse_intake(person_form(mode="agency"), SHOP)
    options = counter_options(route_options(SHOP, refused.applicant, online=True))  # type: ignore[arg-type]
    assert choose_mode(refused, options) is None and "不能选择帮代办" in refused.errors["mode"]
    village = parse_intake(person_form(m_application_letter="provided"), PARTY)
    only = counter_options(route_options(PARTY, village.applicant, online=True))  # type: ignore[arg-type]
    assert choose_mode(village, only) is None
    assert village.errors["mode"] == "该事项对此申请人当前没有可用的办理方式"


def test_intake_keys_are_fresh_and_flags_offered() -> None:
    assert new_intake_key() != new_intake_key() and len(new_intake_key()) == 24
    assert Eligibility.ELDERLY in FLAGS
