"""Intake (受理): a posted intake form, read into an applicant, a representative and the
material inputs, with each problem in Chinese next to the form field it belongs to.

The village kiosk and the township counter post the same form — ``p_*`` for a person, ``o_*``
for an organisation, ``rep_*`` for a representative, ``m_<key>`` / ``d_<key>`` for each
material's status and promised deadline, ``mode`` / ``mode_note`` for the routing — and both
read it here, pre-review it (``core.prereview``), route it (``core.routing``) and draft the case
document (``core.cases.new_case``) the same way. The counter only differs in where the citizen
stands (``counter_options``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Generic, TypeVar

import msgspec

from core.calendar import WorkCalendar
from core.cases import (
    Case,
    MaterialStatus,
    Organisation,
    Origin,
    Person,
    Representative,
    new_case,
)
from core.catalogue import CatalogueItem, Eligibility, HandlingLevel, Mode
from core.clock import Hlc
from core.errors import InvalidInput
from core.hierarchy import parent_of
from core.prereview import MaterialInput, PreReview, materials_states, prereview
from core.routing import PREFERENCE, RouteOption, choose, recommend

D = TypeVar("D")

__all__ = [
    "Outcome",
    "FLAGS",
    "Intake",
    "new_intake_key",
    "parse_intake",
    "form_field",
    "handling_unit",
    "review_materials",
    "choose_mode",
    "counter_options",
    "draft_case",
]

FLAGS = (Eligibility.ELDERLY, Eligibility.DISABLED, Eligibility.BEDRIDDEN)
"""The applicant flags the form offers (door-to-door eligibility)."""

# Where the domain's field names land on the form.
_PERSON_FIELDS = {
    "applicant.name": "p_name",
    "applicant.id_number": "p_id",
    "applicant.phone": "p_phone",
}
_ORG_FIELDS = {
    "applicant.name": "o_name",
    "applicant.credit_code": "o_code",
    "applicant.contact_phone": "o_contact_phone",
    "applicant.phone": "o_contact_phone",
}
_REP_FIELDS = {
    "representative.name": "rep_name",
    "representative.id_number": "rep_id",
    "representative.phone": "rep_phone",
}


def new_intake_key() -> str:
    """A fresh idempotency key for one intake form."""
    return secrets.token_hex(12)


@dataclass
class Intake:
    """One posted intake form, parsed: what the page shows back and what the save needs."""

    values: dict[str, str]
    flags: tuple[str, ...]
    statuses: dict[str, str]
    deadlines: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    applicant: Person | Organisation | None = None
    representative: Representative | None = None
    materials: tuple[MaterialInput, ...] = ()

    def error(self, name: str, message: str) -> None:
        """Note an error next to field ``name`` (the first one wins)."""
        self.errors.setdefault(name, message)


@dataclass
class Outcome(Generic[D]):
    """What reviewing or saving an intake led to; ``D`` is how an app lists the applicant's
    open cases of the same service."""

    intake: Intake
    review: PreReview | None = None
    options: tuple[RouteOption, ...] = ()
    mode: Mode | None = None
    duplicates: list[D] = field(default_factory=list)
    case: Case | None = None
    repeated: bool = False
    """The intake key had been saved before: ``case`` is that earlier case."""

    @property
    def blocked(self) -> bool:
        """Pre-review blocks submission (the one-time notice is printed, nothing written)."""
        return self.review is not None and not self.review.can_submit

    @property
    def ok(self) -> bool:
        """Nothing to fix on the form."""
        return not self.intake.errors and not self.blocked


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def parse_intake(form: dict[str, Any], item: CatalogueItem) -> Intake:
    """Read the posted form (values as strings; ``flags`` may be a list)."""
    raw_flags = form.get("flags") or []
    flags = tuple(
        f for f in ([raw_flags] if isinstance(raw_flags, str) else raw_flags) if f in FLAGS
    )
    values = {
        k: str(v).strip()
        for k, v in form.items()
        if k != "flags" and not k.startswith(("m_", "d_")) and isinstance(v, str)
    }
    statuses = {m.key: str(form.get(f"m_{m.key}", "")).strip() for m in item.materials}
    deadlines = {m.key: str(form.get(f"d_{m.key}", "")).strip() for m in item.materials}
    intake = Intake(values, flags, statuses, deadlines)
    v = values.get
    if v("applicant_type", "person") == "organisation":
        if not v("o_name"):
            intake.error("o_name", "请填写单位名称")
        if not v("o_code"):
            intake.error("o_code", "请填写统一社会信用代码")
        intake.applicant = Organisation(
            name=v("o_name", ""),
            credit_code=v("o_code", "").upper(),
            contact_name=v("o_contact_name", ""),
            contact_phone=v("o_contact_phone", ""),
            address=v("o_address", ""),
        )
    else:
        if not v("p_name"):
            intake.error("p_name", "请填写申请人姓名")
        intake.applicant = Person(
            name=v("p_name", ""),
            id_number=v("p_id", "").upper(),
            phone=v("p_phone", ""),
            address=v("p_address", ""),
            flags=tuple(Eligibility(f) for f in flags),
        )
    if v("rep_on"):
        if not v("rep_name"):
            intake.error("rep_name", "请填写代理人姓名")
        intake.representative = Representative(
            name=v("rep_name", ""),
            id_number=v("rep_id", "").upper(),
            phone=v("rep_phone", ""),
            relation=v("rep_relation", ""),
        )
    entries = []
    for m in item.materials:
        status = statuses[m.key] or MaterialStatus.MISSING.value
        if status not in {s.value for s in MaterialStatus}:
            intake.error(f"m_{m.key}", "请选择材料情况")
            continue
        deadline = None
        if status == MaterialStatus.TO_FOLLOW.value and deadlines[m.key]:
            deadline = _date(deadlines[m.key])
            if deadline is None:
                intake.error(f"d_{m.key}", "补交期限格式不正确, 应为 年-月-日")
        entries.append(MaterialInput(key=m.key, status=MaterialStatus(status), deadline=deadline))
    intake.materials = tuple(entries)
    return intake


def form_field(name: str, intake: Intake) -> str:
    """The form field a domain error on ``name`` (e.g. ``applicant.id_number``) belongs to."""
    if name.startswith("representative."):
        return _REP_FIELDS.get(name, "rep_name")
    if isinstance(intake.applicant, Organisation):
        return _ORG_FIELDS.get(name, "o_name")
    if name.startswith("applicant."):
        return _PERSON_FIELDS.get(name, "p_name")
    return "form"


def handling_unit(item: CatalogueItem, village: str | None, township: str) -> str:
    """The unit that decides the case: the village, its township or the district (a
    village-level item opened at a counter, without a village, is decided by the township)."""
    if item.handling_level is HandlingLevel.VILLAGE:
        return village or township
    if item.handling_level is HandlingLevel.TOWNSHIP:
        return township
    return parent_of(township) or township


def review_materials(
    intake: Intake, item: CatalogueItem, *, today: date, calendar: WorkCalendar
) -> PreReview | None:
    """Pre-review the form's materials (None if their inputs are malformed: the errors are on
    the form); a line that blocks is reported by the review, not as a field error."""
    try:
        review = prereview(item, intake.materials, today=today, calendar=calendar)
    except InvalidInput as exc:
        for e in exc.errors:
            intake.error("form", e.message)
        return None
    for b in review.blocking:
        intake.errors.pop(f"m_{b.key}", None)
    return review


def choose_mode(intake: Intake, options: Sequence[RouteOption]) -> Mode | None:
    """The mode the form chose (``mode``, with ``mode_note`` for an override) or else the
    recommended one; None with an error on ``mode`` if it is not allowed or none is."""
    try:
        wanted = intake.values.get("mode", "")
        if wanted:
            return choose(options, wanted, intake.values.get("mode_note", ""))[0]
        return recommend(options)[0]
    except InvalidInput as exc:
        intake.error("mode", exc.errors[0].message)
        return None


_NOT_AT_COUNTER = {
    Mode.ON_THE_SPOT: (
        "就近办在村(社区)便民服务站办理; 群众已到中心窗口, 请选窗口办理",
        "On the spot means at the village station; the citizen is at the centre's counter",
    ),
    Mode.AGENCY: (
        "帮代办由村代办员携带材料代办; 群众已到中心窗口, 无需代办",
        "Agency means the village agent carries the case; the citizen is at the counter",
    ),
}


def counter_options(options: Sequence[RouteOption]) -> tuple[RouteOption, ...]:
    """``core.routing``'s options for a citizen standing at a service centre's counter: the
    village's ways (on the spot, agency) are not offered, and the window is suggested when it
    is allowed (else the first allowed mode in ``PREFERENCE`` order)."""
    adjusted = [
        msgspec.structs.replace(o, allowed=False, reason=_NOT_AT_COUNTER[o.mode][0],
                                reason_en=_NOT_AT_COUNTER[o.mode][1], recommended=False)
        if o.allowed and o.mode in _NOT_AT_COUNTER
        else msgspec.structs.replace(o, recommended=False)
        for o in options
    ]  # fmt: skip
    allowed = {o.mode for o in adjusted if o.allowed}
    best = Mode.WINDOW if Mode.WINDOW in allowed else next(
        (m for m in PREFERENCE if m in allowed), None
    )  # fmt: skip
    return tuple(
        msgspec.structs.replace(o, recommended=True) if o.mode is best else o for o in adjusted
    )


def draft_case(
    intake: Intake,
    item: CatalogueItem,
    review: PreReview | None,
    options: Sequence[RouteOption],
    mode: Mode | None,
    *,
    origin: Origin,
    counter: int,
    hlc: Hlc,
    wall_time: datetime,
    author: str,
    village: str | None,
    township: str,
    catalogue_version: int,
    unit: str,
) -> Case | None:
    """The case document this form makes, or None with its problems (ID and credit code
    checksums, phones…) noted on the form's fields. Materials that still block are left to
    the pre-review to report: a dry run (any counter) finds every other error."""
    assert intake.applicant is not None
    if review is None or not review.can_submit or mode is None:
        materials: tuple[Any, ...] = ()
    else:
        materials = materials_states(review)
    reason = ""
    if mode is not None:
        try:
            _, reason = choose(options, mode, intake.values.get("mode_note", ""))
        except InvalidInput:
            reason = ""
    try:
        return new_case(
            origin=origin,
            counter=counter,
            hlc=hlc,
            wall_time=wall_time,
            author=author,
            village=village,
            township=township,
            item=item,
            catalogue_version=catalogue_version,
            applicant=intake.applicant,
            mode=mode or Mode.WINDOW,
            handling_unit=unit,
            materials=materials,
            representative=intake.representative,
            mode_reason=reason,
            note=intake.values.get("note", "")[:2000],
        )
    except InvalidInput as exc:
        for e in exc.errors:
            if e.field.startswith("materials"):
                continue  # pre-review reports these
            intake.error(form_field(e.field, intake), e.message)
        return None
