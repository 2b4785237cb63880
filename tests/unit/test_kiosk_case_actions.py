"""The kiosk's rules for the actions after intake: what a case page offers, how a resubmission
answers a one-time notice, what a rating form may hold. Pure: cases and folds, no store."""

from __future__ import annotations

from datetime import date

import pytest

from core.cases import (
    Accepted,
    Completed,
    Delivery,
    MissingMaterial,
    Rated,
    RatingChannel,
    Returned,
    Submitted,
)
from core.catalogue import Mode
from tests.unit.test_fold import TOWNSHIP, VILLAGE, History, Writer, at, kiosk, township
from village_node.cases import (
    case_actions,
    completion_refusal,
    kiosk_rating,
    rating_values,
    resubmission_keys,
)
from village_node.errors import KioskError

DAY = date(2026, 11, 30)
OTHER_VILLAGE = "500109102002"


def on_the_spot() -> tuple[History, Writer]:
    """A village-handled on-the-spot case just submitted at the kiosk, and the kiosk."""
    k = kiosk()
    history = History(k, at(DAY), mode=Mode.ON_THE_SPOT, handling_unit=VILLAGE)
    history.add(k, Submitted(), at(DAY, 10, 1))
    return history, k


def test_a_village_on_the_spot_case_can_be_completed_here() -> None:
    history, _ = on_the_spot()
    state = history.fold(DAY)
    assert completion_refusal(history.case, state, VILLAGE) == ""
    offered = case_actions(history.case, state, VILLAGE)
    assert offered.complete and not offered.resubmit and not offered.rate
    assert "本村" in completion_refusal(history.case, state, OTHER_VILLAGE)


def test_other_modes_units_and_statuses_cannot_be_completed_here() -> None:
    k = kiosk()
    agency = History(k, at(DAY), mode=Mode.AGENCY, handling_unit=VILLAGE)
    agency.add(k, Submitted(), at(DAY, 10, 1))
    assert "帮代办" in completion_refusal(agency.case, agency.fold(DAY), VILLAGE)
    by_township = History(k, at(DAY), mode=Mode.ON_THE_SPOT, handling_unit=TOWNSHIP)
    by_township.add(k, Submitted(), at(DAY, 10, 1))
    assert "镇街" in completion_refusal(by_township.case, by_township.fold(DAY), VILLAGE)
    returned, _ = on_the_spot()
    returned.add(township(), Returned(missing=(MissingMaterial(name="户口簿", key="hukou"),)),
                 at(DAY, 11))  # fmt: skip
    assert "已退回补正" in completion_refusal(returned.case, returned.fold(DAY), VILLAGE)


def test_a_completed_case_offers_one_kiosk_rating() -> None:
    history, k = on_the_spot()
    history.add(k, Accepted(), at(DAY, 10, 2))
    history.add(k, Completed(result="已办", delivery=Delivery.WINDOW), at(DAY, 10, 3))
    offered = case_actions(history.case, history.fold(DAY), VILLAGE)
    assert offered.rate and not offered.complete and offered.rating is None
    history.add(township(), Rated(level=2, channel=RatingChannel.PHONE), at(DAY, 12))
    assert case_actions(history.case, history.fold(DAY), VILLAGE).rate  # another channel
    history.add(k, Rated(level=4, channel=RatingChannel.KIOSK), at(DAY, 13))
    state = history.fold(DAY)
    offered = case_actions(history.case, state, VILLAGE)
    assert not offered.rate and offered.rating == kiosk_rating(state)
    assert offered.rating is not None and offered.rating.level == 4


NOTICE = Returned(
    missing=(
        MissingMaterial(name="户口簿", key="hukou"),
        MissingMaterial(name="村委会证明"),
        MissingMaterial(name="银行卡", key="bank_card"),
    )
)


def test_a_resubmission_answers_every_line_of_the_notice() -> None:
    assert resubmission_keys(NOTICE, ["hukou", "#1", "bank_card", "hukou"]) == (
        "hukou",
        "bank_card",
    )
    with pytest.raises(KioskError, match="还缺: 村委会证明、银行卡"):
        resubmission_keys(NOTICE, ["hukou"])
    with pytest.raises(KioskError, match="不在退回告知书"):
        resubmission_keys(NOTICE, ["hukou", "#1", "bank_card", "id_card"])
    with pytest.raises(KioskError, match="请逐项勾选"):
        resubmission_keys(NOTICE, ["", " "])


def test_rating_values_are_checked() -> None:
    assert rating_values("5", ["态度好", "态度好", " 效率高 "], " 好 ") == (
        5,
        ("态度好", "效率高"),
        "好",
    )
    assert rating_values(1, [], "")[0] == 1
    for bad in ("0", "6", "", "五", 7):
        with pytest.raises(KioskError, match="请选择评价等级"):
            rating_values(bad, [], "")
    with pytest.raises(KioskError, match="没有这个评价标签"):
        rating_values("3", ["随便"], "")
    with pytest.raises(KioskError, match="2000"):
        rating_values("3", [], "字" * 2001)
