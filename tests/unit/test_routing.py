"""Routing (六办): the options for a case, the suggestion, and agents' overrides."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from core.cases import Organisation, Person
from core.catalogue import CatalogueItem, Eligibility, HandlingLevel, Mode
from core.errors import InvalidInput
from core.routing import (
    DISPLAY_ORDER,
    RouteOption,
    choose,
    door_to_door_eligible,
    recommend,
    route_options,
)

CATALOGUE = Path(__file__).resolve().parents[2] / "central" / "demo" / "catalogue.json"


def item(name: str) -> CatalogueItem:
    items = json.loads(CATALOGUE.read_text(encoding="utf-8"))["items"]
    return msgspec.convert(next(i for i in items if i["name"] == name), CatalogueItem)


ALLOWANCE = item("高龄津贴申请")  # district, door_to_door + agency, for elderly and bedridden
LEGAL = item("法律咨询")  # village, video + on_the_spot, immediate
SHOP = item("个体工商户设立登记")  # township, video + window, promised
TRANSFER = item("党员组织关系转接")  # township, on_the_spot + video, promised
CARD = item("社会保障卡申领")  # township, on_the_spot + window, immediate
EXPRESS = item("快递代收代投")  # village, on_the_spot only
MEALS = item("助餐助浴预约")  # village, door_to_door only
CERTIFY = item("养老待遇资格认证")  # village, door_to_door + on_the_spot, immediate

CITIZEN = Person(name="张三", id_number="500109193805120013", phone="13800000000")
ELDER = msgspec.structs.replace(CITIZEN, flags=(Eligibility.ELDERLY,))
DISABLED = msgspec.structs.replace(CITIZEN, flags=(Eligibility.DISABLED,))
COMPANY = Organisation(name="演示农业合作社", credit_code="91500109MA60XK3P07")


def by_mode(options: tuple[RouteOption, ...]) -> dict[Mode, RouteOption]:
    return {o.mode: o for o in options}


def allowed(options: tuple[RouteOption, ...]) -> list[Mode]:
    return [o.mode for o in options if o.allowed]


def test_every_mode_listed_in_display_order_with_reasons() -> None:
    options = route_options(SHOP, CITIZEN, online=True)
    assert tuple(o.mode for o in options) == DISPLAY_ORDER
    assert all(o.reason and o.reason_en for o in options)
    assert sum(o.recommended for o in options) == 1


def test_door_to_door_for_eligible_elderly() -> None:
    options = route_options(ALLOWANCE, ELDER, online=False)
    assert allowed(options) == [Mode.AGENCY, Mode.DOOR_TO_DOOR, Mode.WINDOW]
    door = by_mode(options)[Mode.DOOR_TO_DOOR]
    assert door.recommended and "高龄老人" in door.reason
    mode, reason = recommend(options)
    assert mode is Mode.DOOR_TO_DOOR and reason.startswith("系统推荐上门办")


def test_door_to_door_refused_for_ineligible_person_and_organisation() -> None:
    for applicant in (CITIZEN, DISABLED):  # 高龄津贴 serves elderly and bedridden only
        door = by_mode(route_options(ALLOWANCE, applicant, online=True))[Mode.DOOR_TO_DOOR]
        assert not door.allowed and "不符合条件" in door.reason
    door = by_mode(route_options(ALLOWANCE, COMPANY, online=True))[Mode.DOOR_TO_DOOR]
    assert not door.allowed and "单位" in door.reason
    assert door_to_door_eligible(ALLOWANCE, COMPANY) == ()
    assert door_to_door_eligible(ALLOWANCE, ELDER) == (Eligibility.ELDERLY,)
    mode, _ = recommend(route_options(ALLOWANCE, CITIZEN, online=True))
    assert mode is Mode.AGENCY


def test_door_to_door_not_offered_by_item() -> None:
    door = by_mode(route_options(SHOP, ELDER, online=True))[Mode.DOOR_TO_DOOR]
    assert not door.allowed and door.reason == "该事项不提供上门办"


def test_item_naming_no_groups_serves_any_flagged_person() -> None:
    open_item = msgspec.structs.replace(ALLOWANCE, door_to_door_for=())
    assert by_mode(route_options(open_item, DISABLED, online=False))[Mode.DOOR_TO_DOOR].allowed
    assert not by_mode(route_options(open_item, CITIZEN, online=False))[Mode.DOOR_TO_DOOR].allowed


def test_video_needs_item_and_link() -> None:
    online = by_mode(route_options(LEGAL, CITIZEN, online=True))[Mode.VIDEO]
    assert online.allowed
    offline = by_mode(route_options(LEGAL, CITIZEN, online=False))[Mode.VIDEO]
    assert not offline.allowed and "网络未连接" in offline.reason
    not_offered = by_mode(route_options(ALLOWANCE, ELDER, online=True))[Mode.VIDEO]
    assert not not_offered.allowed and not_offered.reason == "该事项不提供视频办"


def test_video_staff_unknown_allowed_false_refused() -> None:
    assert by_mode(route_options(SHOP, CITIZEN, online=True, video_staff=None))[Mode.VIDEO].allowed
    assert by_mode(route_options(SHOP, CITIZEN, online=True, video_staff=True))[Mode.VIDEO].allowed
    no_staff = by_mode(route_options(SHOP, CITIZEN, online=True, video_staff=False))[Mode.VIDEO]
    assert not no_staff.allowed and "视频坐席" in no_staff.reason


def test_on_the_spot_for_village_level_items() -> None:
    options = route_options(LEGAL, CITIZEN, online=True)
    spot = by_mode(options)[Mode.ON_THE_SPOT]
    assert spot.allowed and spot.recommended and "村(社区)" in spot.reason
    # a village-level item is not taken to the township window unless it lists the window
    window = by_mode(options)[Mode.WINDOW]
    assert not window.allowed


def test_on_the_spot_for_immediate_township_item() -> None:
    spot = by_mode(route_options(CARD, CITIZEN, online=False))[Mode.ON_THE_SPOT]
    assert spot.allowed and "即办件" in spot.reason


def test_on_the_spot_refused_for_promised_township_item() -> None:
    options = route_options(TRANSFER, CITIZEN, online=False)
    spot = by_mode(options)[Mode.ON_THE_SPOT]
    assert not spot.allowed and "镇(街道)" in spot.reason
    # offline, not immediate: the township window is the fallback
    assert allowed(options) == [Mode.WINDOW]
    assert recommend(options)[0] is Mode.WINDOW


def test_on_the_spot_not_offered_by_item() -> None:
    spot = by_mode(route_options(ALLOWANCE, ELDER, online=True))[Mode.ON_THE_SPOT]
    assert not spot.allowed and spot.reason == "该事项不提供就近办"


def test_agency_only_when_item_allows() -> None:
    assert by_mode(route_options(ALLOWANCE, CITIZEN, online=True))[Mode.AGENCY].allowed
    agency = by_mode(route_options(SHOP, CITIZEN, online=True))[Mode.AGENCY]
    assert not agency.allowed and "帮代办清单" in agency.reason


def test_window_fallback_for_township_and_district_items() -> None:
    for it in (SHOP, ALLOWANCE, TRANSFER):
        assert by_mode(route_options(it, CITIZEN, online=False))[Mode.WINDOW].allowed
    assert not by_mode(route_options(EXPRESS, CITIZEN, online=False))[Mode.WINDOW].allowed
    village_with_window = msgspec.structs.replace(EXPRESS, modes=(Mode.ON_THE_SPOT, Mode.WINDOW))
    assert by_mode(route_options(village_with_window, CITIZEN, online=False))[Mode.WINDOW].allowed


def test_preference_on_the_spot_first_then_door_then_agency_video_window() -> None:
    assert recommend(route_options(CERTIFY, ELDER, online=True))[0] is Mode.ON_THE_SPOT
    assert recommend(route_options(ALLOWANCE, ELDER, online=True))[0] is Mode.DOOR_TO_DOOR
    assert recommend(route_options(ALLOWANCE, CITIZEN, online=True))[0] is Mode.AGENCY
    assert recommend(route_options(SHOP, CITIZEN, online=True))[0] is Mode.VIDEO
    assert recommend(route_options(SHOP, CITIZEN, online=False))[0] is Mode.WINDOW


def test_no_mode_at_all() -> None:
    options = route_options(MEALS, CITIZEN, online=True)
    assert allowed(options) == [] and not any(o.recommended for o in options)
    with pytest.raises(InvalidInput) as exc:
        recommend(options)
    assert exc.value.errors[0].field == "mode" and "没有可用的办理方式" in str(exc.value)
    assert recommend(route_options(MEALS, ELDER, online=True))[0] is Mode.DOOR_TO_DOOR


def test_choose_the_recommended_mode() -> None:
    options = route_options(ALLOWANCE, ELDER, online=True)
    assert choose(options, Mode.DOOR_TO_DOOR) == recommend(options)


def test_choose_another_allowed_mode_records_override() -> None:
    options = route_options(ALLOWANCE, ELDER, online=True)
    mode, reason = choose(options, Mode.AGENCY, note="家属代为办理")
    assert mode is Mode.AGENCY
    assert reason == "工作人员改选帮代办（系统推荐上门办）：家属代为办理"
    mode, reason = choose(options, "window")
    assert mode is Mode.WINDOW and reason.startswith("工作人员改选窗口办") and "窗口" in reason


def test_override_to_disallowed_mode_refused_with_clear_message() -> None:
    options = route_options(ALLOWANCE, CITIZEN, online=False)
    with pytest.raises(InvalidInput) as exc:
        choose(options, Mode.DOOR_TO_DOOR)
    (err,) = exc.value.errors
    assert err.field == "mode"
    assert err.message == "不能选择上门办：上门办仅面向高龄老人、卧床不起，申请人不符合条件"
    assert "door_to_door is not allowed" in err.message_en
    with pytest.raises(InvalidInput) as exc:
        choose(route_options(LEGAL, CITIZEN, online=False), Mode.VIDEO)
    assert exc.value.errors[0].message == "不能选择视频办：当前网络未连接，无法视频办理"


def test_override_unknown_or_absent_mode_refused() -> None:
    options = route_options(SHOP, CITIZEN, online=True)
    with pytest.raises(InvalidInput) as exc:
        choose(options, "teleport")
    assert "未知的办理方式" in exc.value.errors[0].message
    with pytest.raises(InvalidInput) as exc:
        choose(options[:1], Mode.WINDOW)
    assert "不在可选的办理方式中" in exc.value.errors[0].message


def test_reason_fits_on_the_case() -> None:
    options = route_options(ALLOWANCE, ELDER, online=True)
    _, reason = choose(options, Mode.AGENCY, note="很长" * 2000)
    assert len(reason) <= 2000


def test_district_level_handled_item() -> None:
    assert ALLOWANCE.handling_level is HandlingLevel.DISTRICT
    assert not by_mode(route_options(ALLOWANCE, ELDER, online=True))[Mode.ON_THE_SPOT].allowed
