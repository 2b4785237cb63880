"""Routing (六办): which modes can serve a case at the kiosk, which one to suggest, and overrides.

Options come in a fixed display order — on the spot, agency, door-to-door, video, window — every
mode listed, allowed or not, each with its reason in Chinese and English. The recommendation is
the first allowed mode in ``PREFERENCE`` order: done at once at the village, then a home visit
for an eligible applicant, then the agent carrying it, then video, then the township window.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from core.cases import Applicant, Person
from core.catalogue import CaseType, CatalogueItem, Eligibility, HandlingLevel, Mode
from core.errors import FieldError, InvalidInput

__all__ = [
    "DISPLAY_ORDER",
    "PREFERENCE",
    "RouteOption",
    "door_to_door_eligible",
    "route_options",
    "recommend",
    "choose",
]

DISPLAY_ORDER: tuple[Mode, ...] = (
    Mode.ON_THE_SPOT,
    Mode.AGENCY,
    Mode.DOOR_TO_DOOR,
    Mode.VIDEO,
    Mode.WINDOW,
)
"""The order options are listed in."""

PREFERENCE: tuple[Mode, ...] = (
    Mode.ON_THE_SPOT,
    Mode.DOOR_TO_DOOR,
    Mode.AGENCY,
    Mode.VIDEO,
    Mode.WINDOW,
)
"""The order the recommendation tries allowed modes in."""


class RouteOption(msgspec.Struct, frozen=True, kw_only=True):
    """One mode for this case: allowed or not, why, and whether it is the suggested one."""

    mode: Mode
    allowed: bool
    reason: str
    reason_en: str
    recommended: bool = False

    @property
    def label(self) -> str:
        """Chinese name of the mode."""
        return self.mode.label


def door_to_door_eligible(item: CatalogueItem, applicant: Applicant) -> tuple[Eligibility, ...]:
    """The applicant's flags that qualify for this item's home visit (empty if none).

    An item that names no groups serves every flagged person (elderly, disabled, bedridden, other).
    """
    if not isinstance(applicant, Person):
        return ()
    groups = item.door_to_door_for or tuple(Eligibility)
    return tuple(f for f in applicant.flags if f in groups)


def _on_the_spot(item: CatalogueItem) -> RouteOption:
    mode = Mode.ON_THE_SPOT
    if mode not in item.modes:
        return RouteOption(
            mode=mode,
            allowed=False,
            reason="该事项不提供就近办",
            reason_en="The item is not served on the spot",
        )
    if item.handling_level is HandlingLevel.VILLAGE:
        return RouteOption(
            mode=mode,
            allowed=True,
            reason="村(社区)办理的事项，可在本村便民服务站当场办理",
            reason_en="A village-level item: handled here at the village station",
        )
    if item.case_type is CaseType.IMMEDIATE:
        return RouteOption(
            mode=mode,
            allowed=True,
            reason="即办件，可在本村便民服务站当场办结",
            reason_en="An immediate item the village station can complete at once",
        )
    return RouteOption(
        mode=mode,
        allowed=False,
        reason=f"该事项由{item.handling_level.label}审批且不是即办件，村里不能当场办结",
        reason_en="Decided above the village and not immediate: the village cannot complete it",
    )


def _agency(item: CatalogueItem) -> RouteOption:
    mode = Mode.AGENCY
    if mode not in item.modes:
        return RouteOption(
            mode=mode,
            allowed=False,
            reason="该事项不在帮代办清单内",
            reason_en="The item is not on the agency list",
        )
    return RouteOption(
        mode=mode,
        allowed=True,
        reason="帮代办：由村代办员携带材料代为办理，群众无需跑腿",
        reason_en="Agency: the village agent carries the case; the applicant need not travel",
    )


def _door_to_door(item: CatalogueItem, applicant: Applicant) -> RouteOption:
    mode = Mode.DOOR_TO_DOOR
    if mode not in item.modes:
        return RouteOption(
            mode=mode,
            allowed=False,
            reason="该事项不提供上门办",
            reason_en="The item is not served door to door",
        )
    groups = item.door_to_door_for or tuple(Eligibility)
    who = "、".join(g.label for g in groups)
    who_en = ", ".join(g.value for g in groups)
    if not isinstance(applicant, Person):
        return RouteOption(
            mode=mode,
            allowed=False,
            reason=f"上门办仅面向{who}，单位申请人不适用",
            reason_en=f"Door-to-door serves only persons ({who_en}), not organisations",
        )
    flags = door_to_door_eligible(item, applicant)
    if not flags:
        return RouteOption(
            mode=mode,
            allowed=False,
            reason=f"上门办仅面向{who}，申请人不符合条件",
            reason_en=f"Door-to-door serves only {who_en}; the applicant is not eligible",
        )
    return RouteOption(
        mode=mode,
        allowed=True,
        reason=f"申请人属于{'、'.join(f.label for f in flags)}，可预约工作人员上门办理",
        reason_en=(
            f"The applicant is eligible ({', '.join(f.value for f in flags)}): staff can visit"
        ),
    )


def _video(item: CatalogueItem, online: bool, video_staff: bool | None) -> RouteOption:
    mode = Mode.VIDEO
    if mode not in item.modes:
        return RouteOption(
            mode=mode,
            allowed=False,
            reason="该事项不提供视频办",
            reason_en="The item is not served by video",
        )
    if not online:
        return RouteOption(
            mode=mode,
            allowed=False,
            reason="当前网络未连接，无法视频办理",
            reason_en="The kiosk is offline now: no video call possible",
        )
    if video_staff is False:
        return RouteOption(
            mode=mode,
            allowed=False,
            reason="镇(街道)当前没有视频坐席",
            reason_en="The township has no video staff now",
        )
    return RouteOption(
        mode=mode,
        allowed=True,
        reason="网络已连接，可与镇(街道)工作人员视频办理",
        reason_en="Online now: handled by video call with township staff",
    )


def _window(item: CatalogueItem) -> RouteOption:
    mode = Mode.WINDOW
    if mode in item.modes or item.handling_level is not HandlingLevel.VILLAGE:
        return RouteOption(
            mode=mode,
            allowed=True,
            reason="到镇(街道)便民服务中心窗口办理",
            reason_en="At the township service centre's window",
        )
    return RouteOption(
        mode=mode,
        allowed=False,
        reason="村(社区)办理的事项，不在镇(街道)窗口办理",
        reason_en="A village-level item: not handled at the township window",
    )


def route_options(
    item: CatalogueItem,
    applicant: Applicant,
    *,
    online: bool,
    video_staff: bool | None = None,
) -> tuple[RouteOption, ...]:
    """Every mode for this item and applicant, in ``DISPLAY_ORDER``, the suggested one marked.

    ``video_staff`` is whether the township has someone for video now; None (unknown) allows
    video whenever the kiosk is online.
    """
    built = {
        Mode.ON_THE_SPOT: _on_the_spot(item),
        Mode.AGENCY: _agency(item),
        Mode.DOOR_TO_DOOR: _door_to_door(item, applicant),
        Mode.VIDEO: _video(item, online, video_staff),
        Mode.WINDOW: _window(item),
    }
    best = next((m for m in PREFERENCE if built[m].allowed), None)
    return tuple(
        msgspec.structs.replace(built[m], recommended=True) if m is best else built[m]
        for m in DISPLAY_ORDER
    )


def _no_mode() -> InvalidInput:
    return InvalidInput(
        FieldError(
            "mode",
            "该事项对此申请人当前没有可用的办理方式",
            "No mode can serve this item for this applicant now",
        )
    )


def recommend(options: Sequence[RouteOption]) -> tuple[Mode, str]:
    """The suggested mode and its reason to record; InvalidInput if no mode is allowed."""
    for option in options:
        if option.recommended and option.allowed:
            return option.mode, f"系统推荐{option.mode.label}：{option.reason}"
    allowed = [o for o in options if o.allowed]
    if not allowed:
        raise _no_mode()
    best = min(allowed, key=lambda o: PREFERENCE.index(o.mode))
    return best.mode, f"系统推荐{best.mode.label}：{best.reason}"


def choose(options: Sequence[RouteOption], mode: Mode | str, note: str = "") -> tuple[Mode, str]:
    """An agent's choice, checked: (mode, reason to record); InvalidInput if not allowed.

    Picking the suggested mode records its reason; picking another records the override,
    the suggestion it replaced and the agent's ``note`` (or the option's own reason).
    """
    try:
        wanted = Mode(mode)
    except ValueError:
        raise InvalidInput(
            FieldError("mode", f"未知的办理方式：{mode}", f"Unknown mode: {mode}")
        ) from None
    option = next((o for o in options if o.mode is wanted), None)
    if option is None:
        raise InvalidInput(
            FieldError(
                "mode",
                f"{wanted.label}不在可选的办理方式中",
                f"{wanted.value} is not among the options",
            )
        )
    if not option.allowed:
        raise InvalidInput(
            FieldError(
                "mode",
                f"不能选择{wanted.label}：{option.reason}",
                f"{wanted.value} is not allowed: {option.reason_en}",
            )
        )
    suggested = next((o for o in options if o.recommended and o.allowed), None)
    if suggested is None or suggested.mode is wanted:
        return wanted, f"系统推荐{wanted.label}：{option.reason}"
    why = note.strip()[:1000] or option.reason
    return wanted, f"工作人员改选{wanted.label}（系统推荐{suggested.mode.label}）：{why}"
