"""Pre-review (预审): an item's checklist against what the applicant brought, before it travels.

Each material is provided, missing, or to follow on commitment (告知承诺/容缺受理) by a deadline
within the material's ``follow_days`` working days. A line *blocks* submission when a required
material is missing, when a material that may not follow is promised later, or when a promised
deadline is not after today or beyond the allowed working days. The one-time notice (一次性告知书)
lists everything still needed at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import msgspec

from core.calendar import WorkCalendar
from core.cases import MaterialState, MaterialStatus, MissingMaterial
from core.catalogue import CatalogueItem, Material, MaterialForm
from core.errors import FieldError, InvalidInput

__all__ = [
    "MaterialInput",
    "ReviewLine",
    "Blocker",
    "Commitment",
    "NoticeLine",
    "OneTimeNotice",
    "PreReview",
    "prereview",
    "materials_states",
]


class MaterialInput(msgspec.Struct, frozen=True, kw_only=True):
    """What the agent recorded for one material; a to_follow without deadline gets the latest."""

    key: str
    status: MaterialStatus
    deadline: date | None = None
    note: str = ""
    attachments: tuple[str, ...] = ()


class Blocker(msgspec.Struct, frozen=True, kw_only=True):
    """Why one material stops submission."""

    key: str
    name: str
    message: str
    message_en: str


class ReviewLine(msgspec.Struct, frozen=True, kw_only=True):
    """One checklist line after pre-review."""

    key: str
    name: str
    required: bool
    status: MaterialStatus
    may_follow: bool
    deadline: date | None = None
    latest: date | None = None
    provisional: bool = False
    follow_days: int | None = None
    form: MaterialForm = MaterialForm.ORIGINAL
    copies: int = 1
    standard: str = ""
    source: str = ""
    note: str = ""
    attachments: tuple[str, ...] = ()
    blocker: Blocker | None = None

    @property
    def needed(self) -> bool:
        """True if the line still asks something of the applicant (missing or to follow)."""
        return self.status is not MaterialStatus.PROVIDED


class Commitment(msgspec.Struct, frozen=True, kw_only=True):
    """A material promised later: its due date, counted in working days from the review day."""

    key: str
    name: str
    due: date
    working_days: int
    provisional: bool = False


class NoticeLine(msgspec.Struct, frozen=True, kw_only=True):
    """One material the one-time notice asks for."""

    key: str
    name: str
    status: MaterialStatus
    required: bool
    form: MaterialForm
    copies: int
    standard: str = ""
    source: str = ""
    deadline: date | None = None
    provisional: bool = False
    note: str = ""


class OneTimeNotice(msgspec.Struct, frozen=True, kw_only=True):
    """一次性告知书: every material still needed at once, structured and as plain Chinese text."""

    item_code: str
    item_name: str
    issued: date
    lines: tuple[NoticeLine, ...]
    text: str

    @property
    def complete(self) -> bool:
        """True if nothing is still needed."""
        return not self.lines

    def missing_materials(self) -> tuple[MissingMaterial, ...]:
        """The notice's lines as the ``missing`` of a Returned event."""
        return tuple(
            MissingMaterial(name=line.name, key=line.key, note=_line_note(line))
            for line in self.lines
        )


class PreReview(msgspec.Struct, frozen=True, kw_only=True):
    """The result of pre-review for one item on one day."""

    item_code: str
    item_name: str
    today: date
    lines: tuple[ReviewLine, ...]
    blocking: tuple[Blocker, ...]
    commitments: tuple[Commitment, ...]

    @property
    def can_submit(self) -> bool:
        """True if nothing blocks submission."""
        return not self.blocking

    def notice(self) -> OneTimeNotice:
        """The one-time notice listing every missing and to-follow material."""
        lines = tuple(
            NoticeLine(
                key=line.key,
                name=line.name,
                status=line.status,
                required=line.required,
                form=line.form,
                copies=line.copies,
                standard=line.standard,
                source=line.source,
                deadline=line.deadline if line.status is MaterialStatus.TO_FOLLOW else None,
                provisional=line.provisional,
                note=line.note,
            )
            for line in self.lines
            if line.needed
        )
        return OneTimeNotice(
            item_code=self.item_code,
            item_name=self.item_name,
            issued=self.today,
            lines=lines,
            text=_render(self.item_code, self.item_name, self.today, lines),
        )


def _cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _line_note(line: NoticeLine) -> str:
    parts: list[str] = []
    if line.status is MaterialStatus.TO_FOLLOW and line.deadline is not None:
        parts.append(f"承诺后补，请于{_cn_date(line.deadline)}前补交")
        if line.provisional:
            parts.append("期限按暂定工作日历计算")
    elif line.required:
        parts.append("必需材料")
    else:
        parts.append("非必需，如有请提供")
    if line.standard:
        parts.append(f"要求：{line.standard}")
    if line.note:
        parts.append(f"备注：{line.note}")
    return "；".join(parts)


def _render(code: str, name: str, issued: date, lines: tuple[NoticeLine, ...]) -> str:
    head = ["一次性告知书", f"事项名称：{name}（编码 {code}）", f"告知日期：{_cn_date(issued)}"]
    if not lines:
        return "\n".join([*head, "经预审，申请材料齐全，无需补充。"])
    body = ["经预审，办理本事项还需以下材料，现一次性告知，请一并准备："]
    for i, line in enumerate(lines, 1):
        body.append(
            f"{i}. {line.name}（{line.form.label}{line.copies}份，{line.status.label}）"
            f"：{_line_note(line)}"
        )
    body.append("以上为本事项所需的全部补充材料，不再另行要求。")
    return "\n".join([*head, *body])


def _check_inputs(
    item: CatalogueItem, entries: Sequence[MaterialInput]
) -> dict[str, tuple[MaterialInput, MaterialStatus]]:
    known = {m.key for m in item.materials}
    errors: list[FieldError] = []
    seen: dict[str, tuple[MaterialInput, MaterialStatus]] = {}
    for i, entry in enumerate(entries):
        where = f"materials[{i}]"
        if entry.key not in known:
            errors.append(
                FieldError(
                    f"{where}.key",
                    f"“{entry.key}”不在“{item.name}”的材料清单中",
                    f"{entry.key} is not a material of this item",
                )
            )
            continue
        if entry.key in seen:
            errors.append(
                FieldError(
                    f"{where}.key",
                    f"材料“{entry.key}”重复填写",
                    f"Material {entry.key} is listed twice",
                )
            )
            continue
        try:
            status = MaterialStatus(entry.status)
        except ValueError:
            errors.append(
                FieldError(
                    f"{where}.status",
                    f"材料状态不正确：{entry.status}",
                    f"Unknown material status: {entry.status}",
                )
            )
            continue
        if entry.deadline is not None and status is not MaterialStatus.TO_FOLLOW:
            errors.append(
                FieldError(
                    f"{where}.deadline",
                    "只有承诺后补的材料才填写补交期限",
                    "Only a material to follow has a deadline",
                )
            )
            continue
        seen[entry.key] = (entry, status)
    if errors:
        raise InvalidInput(errors)
    return seen


def _review(
    m: Material,
    entry: MaterialInput | None,
    status: MaterialStatus,
    today: date,
    calendar: WorkCalendar,
) -> tuple[ReviewLine, Commitment | None]:
    deadline: date | None = None
    latest: date | None = None
    provisional = False
    message = message_en = ""
    if status is MaterialStatus.MISSING and m.required:
        if m.may_follow:
            message = "必需材料缺少；该材料可承诺后补，请选择承诺后补并约定期限"
            message_en = "A required material is missing; it may follow on commitment"
        else:
            message = "必需材料缺少，且该材料不允许承诺后补"
            message_en = "A required material is missing and may not follow"
    elif status is MaterialStatus.TO_FOLLOW:
        if not m.may_follow or not m.follow_days:
            message = "该材料不允许承诺后补"
            message_en = "This material may not follow on commitment"
            deadline = entry.deadline if entry is not None else None
        else:
            limit = calendar.add_working_days(today, m.follow_days)
            latest = limit.day
            deadline = entry.deadline if entry is not None and entry.deadline else latest
            if deadline <= today:
                message = f"补交期限应晚于今天（{_cn_date(today)}）"
                message_en = "The deadline must be later than today"
            elif deadline > latest:
                message = f"补交期限超过{m.follow_days}个工作日，最晚为{_cn_date(latest)}" + (
                    "（暂定）" if limit.provisional else ""
                )
                message_en = (
                    f"The deadline is beyond {m.follow_days} working days (latest {latest})"
                )
            else:
                provisional = bool(calendar.provisional_years_in(today, deadline))
    blocker = (
        Blocker(key=m.key, name=m.name, message=message, message_en=message_en) if message else None
    )
    line = ReviewLine(
        key=m.key,
        name=m.name,
        required=m.required,
        status=status,
        may_follow=m.may_follow,
        deadline=deadline,
        latest=latest,
        provisional=provisional,
        follow_days=m.follow_days,
        form=m.form,
        copies=m.copies,
        standard=m.standard,
        source=m.source,
        note=entry.note.strip() if entry is not None else "",
        attachments=entry.attachments if entry is not None else (),
        blocker=blocker,
    )
    commitment = None
    if status is MaterialStatus.TO_FOLLOW and blocker is None and deadline is not None:
        commitment = Commitment(
            key=m.key,
            name=m.name,
            due=deadline,
            working_days=calendar.working_days_between(today, deadline),
            provisional=provisional,
        )
    return line, commitment


def prereview(
    item: CatalogueItem,
    materials: Sequence[MaterialInput],
    *,
    today: date,
    calendar: WorkCalendar,
) -> PreReview:
    """Review ``materials`` against the item's checklist; a material not listed is missing.

    Raises InvalidInput for an unknown key, a key listed twice, a bad status or a deadline on a
    material that is not to follow; everything else is reported on the result.
    """
    given = _check_inputs(item, materials)
    lines: list[ReviewLine] = []
    commitments: list[Commitment] = []
    for m in item.materials:
        entry, status = given.get(m.key, (None, MaterialStatus.MISSING))
        line, commitment = _review(m, entry, status, today, calendar)
        lines.append(line)
        if commitment is not None:
            commitments.append(commitment)
    return PreReview(
        item_code=item.code,
        item_name=item.name,
        today=today,
        lines=tuple(lines),
        blocking=tuple(line.blocker for line in lines if line.blocker is not None),
        commitments=tuple(commitments),
    )


def materials_states(review: PreReview) -> tuple[MaterialState, ...]:
    """The checklist as the case document stores it; InvalidInput if anything still blocks."""
    if not review.can_submit:
        raise InvalidInput(
            [
                FieldError(f"materials.{b.key}", f"“{b.name}”：{b.message}", b.message_en)
                for b in review.blocking
            ]
        )
    return tuple(
        MaterialState(
            key=line.key,
            name=line.name,
            status=line.status,
            required=line.required,
            deadline=line.deadline if line.status is MaterialStatus.TO_FOLLOW else None,
            attachments=line.attachments,
            note=line.note,
        )
        for line in review.lines
    )
