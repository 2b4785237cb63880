"""Staff actions on a case: each one checked against the case as its documents fold now, then
written as one immutable event by the node (``EventWriter``), and the read model caught up.

Every action goes the same way (``CaseActions._write``):

1. under a lock per case (in this process), read the case and its events from the case
   database in CouchDB (not the read model, which may lag) and fold them for today;
2. compare the form's ``version`` (the fold's event count and latest stamp when the page was
   shown) with the fresh fold: a form posted twice, or a page left open while the case moved
   on, changes nothing (``StaleForm``) — our own write always moves the latest stamp;
3. refuse what the status does not allow (``allowed_kinds``) and what this centre may not
   decide (a case handled by another unit), then fold the case *with* the new events in memory
   and refuse if the fold would keep any of them as a conflict (``ActionRefused``);
4. append the events (stamped after the case's latest stamp) and project the case database
   into the read model, so the page the staff member returns to already shows it.

Input errors are ``InvalidInput`` (Chinese messages); nothing is written when any check fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from core.calendar import DueDate, WorkCalendar
from core.cases import (
    FOLLOW_UP_WORKING_DAYS,
    Accepted,
    Assigned,
    Case,
    CaseEvent,
    CommitmentFulfilled,
    Completed,
    ConflictResolved,
    Delivered,
    Delivery,
    Escalated,
    EventKind,
    EventPayload,
    FollowUp,
    FollowUpStep,
    MaterialsReceived,
    MaterialStatus,
    MissingMaterial,
    Rated,
    RatingChannel,
    Recipient,
    Refused,
    Resumed,
    Returned,
    Suspended,
    SuspendReason,
    Transferred,
    case_from_doc,
    event_from_doc,
    event_id_range,
    is_bad_rating,
    local_date,
    new_event,
)
from core.catalogue import HandlingLevel
from core.clock import HlcClock
from core.errors import FieldError, InvalidInput, NotFound
from core.fold import CaseState, Effect, allowed_kinds, fold
from core.hierarchy import Level, level_of, parent_of
from sync.couch import couch_errors, get_document
from sync.readmodel import CaseRow
from township.errors import TownshipError
from township.inbox import inbox_scope
from township.read_model import district_rules, project_township
from township.staff import console_roles
from township.transfer import open_linked_case

__all__ = [
    "ActionRefused",
    "StaleForm",
    "Actor",
    "Snapshot",
    "CaseActions",
    "version_of",
    "refresh",
    "unit_staff",
    "DECISIONS",
    "offered_actions",
    "FOLLOW_UP_WORKING_DAYS",
    "BadRating",
    "StepDone",
    "FollowUpRound",
    "follow_up_round",
]

DECISIONS = frozenset({
    EventKind.ACCEPTED, EventKind.RETURNED, EventKind.ASSIGNED, EventKind.ESCALATED,
    EventKind.TRANSFERRED, EventKind.SUSPENDED, EventKind.RESUMED, EventKind.COMPLETED,
    EventKind.REFUSED,
})  # fmt: skip
"""Kinds only the unit handling the case may write; the others (materials, handover,
conflicts) may come from any centre the case passes through."""

STALE = "办件已有新的办理记录（或表单已提交过），本次操作未执行，请核对后再试"
_KEPT = "，该事件已保留，请工作人员核实处理"


class ActionRefused(TownshipError):
    """The case as it stands does not allow the action (nothing was written)."""


class StaleForm(ActionRefused):
    """The case changed since the form was shown, e.g. the same form posted twice."""


@dataclass(frozen=True)
class Actor:
    """The staff member acting."""

    username: str
    name: str = ""


@dataclass(frozen=True)
class Snapshot:
    """A case as the case database holds it now, folded for ``today``."""

    case: Case
    events: list[dict[str, Any]]
    state: CaseState
    today: date

    @property
    def version(self) -> str:
        """What a form carries to prove it was filled in on this state."""
        return version_of(self.state)


def version_of(state: CaseState) -> str:
    """The version token of a folded case: its event count and latest stamp."""
    return f"{len(state.timeline)}:{state.last_hlc}"


def refresh(state: Any) -> None:
    """Project the node's case database into the read model now."""
    project_township(state.sessions, state.couch(), state.settings.case_database)


def unit_staff(server: Any, unit: str) -> list[tuple[str, str]]:
    """(username, name) of the enabled console accounts of ``unit`` in the replicated directory."""
    roles = {r.value for r in console_roles(unit)}
    with couch_errors():
        rows = server["directory"].view(
            "_all_docs", startkey="account:", endkey="account:\ufff0", include_docs=True
        )
        docs = [dict(r.doc) for r in rows if r.doc is not None]
    found = [
        (str(d["username"]), str(d.get("display_name") or d["username"]))
        for d in docs
        if d.get("type") == "account" and d.get("unit") == unit and d.get("role") in roles
        and not d.get("disabled") and d.get("username")
    ]  # fmt: skip
    return sorted(found, key=lambda s: s[1])


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(case_id: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(case_id, threading.Lock())


def _bad(field: str, message: str, message_en: str) -> InvalidInput:
    return InvalidInput(FieldError(field, message, message_en))


def _text(value: str, field: str, message: str, message_en: str) -> str:
    value = (value or "").strip()
    if not value:
        raise _bad(field, message, message_en)
    return value


def _enum(kind: type[Any], value: str, field: str, message: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise _bad(field, message, f"Unknown {field}: {value!r}") from None


def offered_actions(case: Case, state: CaseState, unit: str) -> list[str]:
    """The actions the case page offers ``unit``'s staff now (the names of the POST routes)."""
    kinds = allowed_kinds(state.status)
    offer: list[str] = []
    if state.handling_unit == unit:
        decisions = {
            "accept": EventKind.ACCEPTED, "return": EventKind.RETURNED,
            "assign": EventKind.ASSIGNED, "suspend": EventKind.SUSPENDED,
            "resume": EventKind.RESUMED, "complete": EventKind.COMPLETED,
            "refuse": EventKind.REFUSED, "transfer": EventKind.TRANSFERRED,
        }  # fmt: skip
        offer += [name for name, kind in decisions.items() if kind in kinds]
        if (
            EventKind.ESCALATED in kinds
            and case.handling_level is HandlingLevel.DISTRICT
            and level_of(unit) is Level.TOWNSHIP
        ):
            offer.append("escalate")
    if EventKind.MATERIALS_RECEIVED in kinds and state.materials:
        offer.append("materials")
    promised = any(m.status is MaterialStatus.TO_FOLLOW for m in state.materials)
    if EventKind.COMMITMENT_FULFILLED in kinds and promised:
        offer.append("commitments")
    if EventKind.DELIVERED in kinds:
        offer.append("deliver")
    if state.conflicts:
        offer.append("resolve")
    return offer


# -- 差评 follow-ups ------------------------------------------------------------------------


_NAMED_STEPS = (
    FollowUpStep.CALL_BACK, FollowUpStep.FIX, FollowUpStep.RE_RATED, FollowUpStep.CLOSED
)  # fmt: skip


@dataclass(frozen=True)
class BadRating:
    """A 差评 the follow-up answers."""

    event_id: str
    level: int
    channel: RatingChannel
    on: date
    text: str
    anonymous: bool


@dataclass(frozen=True)
class StepDone:
    """One follow-up step written (applied by the fold)."""

    event_id: str
    step: FollowUpStep
    on: date
    author: str
    note: str
    level: int | None


@dataclass(frozen=True)
class FollowUpRound:
    """The follow-up of a case's latest 差评: the ratings that opened it, the steps so far."""

    ratings: tuple[BadRating, ...]
    steps: tuple[StepDone, ...]
    deadline: date | None
    """Set by the first step; None before it (see ``due``)."""
    open: bool

    @property
    def rated_on(self) -> date:
        """The day of the 差评 that opened the follow-up."""
        return self.ratings[0].on

    @property
    def anonymous(self) -> bool:
        """Nobody to call back: every 差评 of the round was given anonymously."""
        return all(r.anonymous for r in self.ratings)

    def default_deadline(self, calendar: WorkCalendar) -> DueDate:
        """``FOLLOW_UP_WORKING_DAYS`` working days after the rating."""
        return calendar.add_working_days(self.rated_on, FOLLOW_UP_WORKING_DAYS)

    def due(self, calendar: WorkCalendar) -> DueDate:
        """The deadline: as the first step set it, or the default one before any step."""
        if self.deadline is not None:
            return DueDate(self.deadline, calendar.is_provisional(self.deadline.year))
        return self.default_deadline(calendar)

    def next_steps(self) -> tuple[FollowUpStep, ...]:
        """The steps that may come next, in the order 回访 → 整改 → 再次评价 → 办结回访.

        An anonymous 差评 has nobody to call back: it starts at the fix, and the follow-up
        rating is written only if the citizen does rate again (fix → closed is allowed)."""
        if not self.open:
            return ()
        last = _NAMED_STEPS.index(self.steps[-1].step) if self.steps else -1
        if self.anonymous and last < 1:
            return (FollowUpStep.FIX,)
        if self.anonymous and last == 1:
            return (FollowUpStep.RE_RATED, FollowUpStep.CLOSED)
        return _NAMED_STEPS[last + 1 : last + 2]


def follow_up_round(
    state: CaseState, docs: Iterable[Mapping[str, Any] | CaseEvent]
) -> FollowUpRound | None:
    """The latest follow-up round of a case from its ``rated`` and ``follow_up`` events (those
    ``state``, the fold of the same documents, applied), or None if it never had a 差评.

    A 差评 while none is open starts a round; one while a round is open joins it."""
    applied = {e.event_id for e in state.timeline if e.effect is Effect.APPLIED}
    events: list[CaseEvent] = []
    for doc in docs:
        if isinstance(doc, Mapping) and doc.get("kind") not in ("rated", "follow_up"):
            continue
        try:
            event = doc if isinstance(doc, CaseEvent) else event_from_doc(doc)
        except InvalidInput:
            continue  # listed among the case's conflicts by the fold
        if event.id in applied:
            events.append(event)
    events.sort(key=lambda e: (e.stamp, e.origin.key, e.counter))
    found: FollowUpRound | None = None
    for event in events:
        p, day = event.payload, local_date(event.wall_time)
        if isinstance(p, Rated) and is_bad_rating(p.level):
            bad = BadRating(event.id, p.level, p.channel, day, p.text, p.anonymous)
            if found is not None and found.open:
                found = FollowUpRound((*found.ratings, bad), found.steps, found.deadline, True)
            else:
                found = FollowUpRound((bad,), (), None, True)
        elif isinstance(p, FollowUp) and found is not None and found.open:
            step = StepDone(event.id, p.step, day, event.author, p.note, p.level)
            found = FollowUpRound(
                found.ratings,
                (*found.steps, step),
                found.deadline if p.deadline is None else p.deadline,
                p.step is not FollowUpStep.CLOSED,
            )
    return found


class CaseActions:
    """The staff actions of one node; ``state`` is the app state (settings, sessions, couch,
    writer)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.unit: str = state.settings.code

    # -- reading --------------------------------------------------------------------------

    def case_id(self, number: str) -> str:
        """The id of the case numbered ``number`` in this unit's inbox, or NotFound."""
        with self.state.sessions() as session:
            found = session.scalar(
                select(CaseRow.case_id).where(
                    CaseRow.case_number == number.strip(), inbox_scope(self.unit)
                )
            )
        if found is None:
            raise NotFound("办件", number, "没有这个办件, 或它不归本中心办理")
        return str(found)

    def snapshot(self, case_id: str) -> Snapshot:
        """The case and its events from the case database, folded for today."""
        server = self.state.couch()
        database = server[self.state.settings.case_database]
        doc = get_document(database, case_id)
        if doc is None:
            raise NotFound("办件", case_id, "办件文档不在本中心的数据库中")
        start, end = event_id_range(case_id)
        with couch_errors():
            rows = database.view("_all_docs", startkey=start, endkey=end, include_docs=True)
            events = [dict(r.doc) for r in rows if r.doc is not None]
        calendar, _ = district_rules(server)
        today = local_date(datetime.now(UTC))
        case = case_from_doc(doc)
        return Snapshot(case, events, fold(case, events, calendar, today), today)

    # -- the one way to write -------------------------------------------------------------

    def _check(self, snap: Snapshot, payloads: Sequence[EventPayload], actor: Actor) -> None:
        """Refuse payloads the case does not allow now (status, handling unit, the fold)."""
        state = snap.state
        allowed = allowed_kinds(state.status)
        for payload in payloads:
            kind = payload.kind
            if kind not in allowed:
                why = f"办件目前为“{state.status.label}”，不能“{kind.label}”"
                if state.accepted_deemed and state.accepted_on and kind is EventKind.RETURNED:
                    why += f"（已于{state.accepted_on.isoformat()}视为受理）"
                raise ActionRefused(why)
            if kind in DECISIONS and state.handling_unit != self.unit:
                raise ActionRefused(f"本件由 {state.handling_unit} 办理，本中心不能“{kind.label}”")
        writer = self.state.writer
        origin = writer.origin()
        clock = HlcClock(origin.key, writer.now_ms)
        now = datetime.now(UTC)
        trial: list[CaseEvent] = []
        for i, payload in enumerate(payloads):
            stamp = clock.tick(after=trial[-1].stamp if trial else state.last_stamp)
            trial.append(
                new_event(
                    snap.case,
                    payload,
                    origin=origin,
                    counter=99_999_000 + i,
                    hlc=stamp,
                    wall_time=now,
                    author=actor.username,
                )
            )
        calendar, _ = district_rules(self.state.couch())
        after = fold(snap.case, [*snap.events, *trial], calendar, snap.today)
        effects = {e.event_id: e.effect for e in after.timeline}
        for event in trial:
            if effects.get(event.id) is not Effect.APPLIED:
                conflict = next((c for c in after.conflicts if c.event_id == event.id), None)
                message = conflict.message if conflict else "该操作与办件现状不符"
                raise ActionRefused(message.replace(_KEPT, "").replace("；该事件已保留", ""))

    def _write(
        self,
        number: str,
        version: str,
        actor: Actor,
        build: Any,
    ) -> list[CaseEvent]:
        """Check and write the payloads ``build(snapshot)`` returns, once."""
        case_id = self.case_id(number)
        with _lock(case_id):
            snap = self.snapshot(case_id)
            if version != snap.version:
                refresh(self.state)
                raise StaleForm(STALE)
            payloads: list[EventPayload] = build(snap)
            self._check(snap, payloads, actor)
            events: list[CaseEvent] = self.state.writer.append(
                self.state.couch()[self.state.settings.case_database],
                snap.case,
                payloads,
                author=actor.username,
                after=snap.state.last_stamp,
            )
        refresh(self.state)
        return events

    # -- the actions ----------------------------------------------------------------------

    def accept(self, number: str, version: str, actor: Actor, note: str = "") -> None:
        """受理: the due date follows from the acceptance date and the item's promised limit."""
        self._write(number, version, actor, lambda s: [Accepted(note=note.strip())])

    def return_with_notice(
        self,
        number: str,
        version: str,
        actor: Actor,
        keys: Iterable[str],
        lines: Iterable[str],
        reason: str = "",
    ) -> None:
        """退回补正 with a one-time notice of every missing material (checklist keys and free
        lines, ``名称：说明`` allowed); the clock stops."""

        def build(snap: Snapshot) -> list[EventPayload]:
            missing: list[MissingMaterial] = []
            for key in dict.fromkeys(k.strip() for k in keys if k.strip()):
                material = snap.case.material(key)
                if material is None:
                    raise _bad("missing", f"材料“{key}”不在本件的材料清单中", "Unknown material")
                missing.append(MissingMaterial(name=material.name, key=key))
            for line in lines:
                name, _, note = line.strip().replace(":", "：").partition("：")
                if name.strip():
                    missing.append(MissingMaterial(name=name.strip(), note=note.strip()))
            if not missing:
                raise _bad("missing", "一次性告知须列明所缺的全部材料，至少一项",
                           "List every missing material, at least one")  # fmt: skip
            return [Returned(missing=tuple(missing), reason=reason.strip())]

        self._write(number, version, actor, build)

    def receive_materials(
        self, number: str, version: str, actor: Actor, keys: Iterable[str], from_person: str,
        note: str = "",
    ) -> None:  # fmt: skip
        """Materials handed over (by the village agent, for agency cases): who and what."""
        chosen = tuple(dict.fromkeys(k.strip() for k in keys if k.strip()))
        if not chosen:
            raise _bad("keys", "请选择收到的材料", "Choose the materials received")
        who = _text(from_person, "from_person", "请填写交材料的人（如村代办员姓名）",
                    "Who handed the materials over?")  # fmt: skip
        payload = MaterialsReceived(keys=chosen, from_person=who, note=note.strip())
        self._write(number, version, actor, lambda s: [payload])

    def fulfil_commitments(
        self, number: str, version: str, actor: Actor, keys: Iterable[str], note: str = ""
    ) -> None:
        """Materials promised under 告知承诺 have arrived."""
        chosen = tuple(dict.fromkeys(k.strip() for k in keys if k.strip()))
        if not chosen:
            raise _bad("keys", "请选择已补交的承诺材料", "Choose the materials that arrived")

        def build(snap: Snapshot) -> list[EventPayload]:
            promised = {m.key for m in snap.state.materials if m.status is MaterialStatus.TO_FOLLOW}
            wrong = [k for k in chosen if k not in promised]
            if wrong:
                raise _bad("keys", f"“{'、'.join(wrong)}”不是待补交的承诺材料",
                           "Not a material promised to follow")  # fmt: skip
            return [CommitmentFulfilled(keys=chosen, note=note.strip())]

        self._write(number, version, actor, build)

    def assign(self, number: str, version: str, actor: Actor, staff: str, note: str = "") -> None:
        """Give the case to a staff member of this centre (again, to reassign)."""
        wanted = staff.strip().lower()
        names = dict(unit_staff(self.state.couch(), self.unit))
        if wanted not in names:
            raise _bad("staff", "只能分派给本中心在岗的工作人员", "Not staff of this centre")

        def build(snap: Snapshot) -> list[EventPayload]:
            if snap.state.assignee == wanted:
                raise ActionRefused(f"本件已由 {names[wanted]} 承办")
            return [Assigned(staff=wanted, staff_name=names[wanted], note=note.strip())]

        self._write(number, version, actor, build)

    def escalate(self, number: str, version: str, actor: Actor, reason: str = "") -> None:
        """Send the case up to the district's service centre, for items handled there."""
        district = parent_of(self.unit)
        if district is None:
            raise ActionRefused("区级服务中心不能再上报")

        def build(snap: Snapshot) -> list[EventPayload]:
            if snap.case.handling_level is not HandlingLevel.DISTRICT:
                raise ActionRefused("该事项不由区级办理，不能上报区级")
            return [Escalated(to_unit=district, reason=reason.strip())]

        self._write(number, version, actor, build)

    def transfer(
        self, number: str, version: str, actor: Actor, to_township: str, reason: str
    ) -> str:
        """Move the case to the township it should have gone to: a new linked case addressed
        there (it travels up to the district and down to that township), then ``transferred``
        here; returns the new case's number."""
        target = to_township.strip()
        try:
            is_township = level_of(target) is Level.TOWNSHIP
        except InvalidInput:
            is_township = False
        own_district = self.unit if level_of(self.unit) is Level.DISTRICT else parent_of(self.unit)
        if not is_township or parent_of(target) != own_district:
            raise _bad("to_township", "请选择本区的另一个镇街", "Choose another township")
        if target == self.unit:
            raise _bad("to_township", "不能移交给本镇街", "Cannot transfer to itself")
        why = _text(reason, "reason", "请填写移交原因", "Say why the case is transferred")
        created: list[Case] = []

        def build(snap: Snapshot) -> list[EventPayload]:
            if target == snap.case.township:
                raise _bad("to_township", "办件已属于该镇街", "The case is already there")
            # Checked before the new case is written: nothing is written if not allowed.
            probe = Transferred(to_township=target, new_case_id=snap.case.id, reason=why)
            self._check(snap, [probe], actor)
            database = self.state.couch()[self.state.settings.case_database]
            case = open_linked_case(
                self.state.writer, database, snap.case, snap.state.handling_unit, target,
                actor.username, why,
            )  # fmt: skip
            created.append(case)
            return [Transferred(to_township=target, new_case_id=case.id, reason=why)]

        self._write(number, version, actor, build)
        return created[0].case_number

    def suspend(self, number: str, version: str, actor: Actor, reason: str, note: str = "") -> None:
        """Pause the time limit for a period the law excludes."""
        why = _enum(SuspendReason, reason, "reason", "请选择中止计时的法定情形")
        self._write(number, version, actor, lambda s: [Suspended(reason=why, note=note.strip())])

    def resume(self, number: str, version: str, actor: Actor, note: str = "") -> None:
        """Let the time limit run again."""
        self._write(number, version, actor, lambda s: [Resumed(note=note.strip())])

    def complete(
        self, number: str, version: str, actor: Actor, result: str, delivery: str, note: str = ""
    ) -> None:
        """办结 with the result and how it reaches the citizen."""
        text = _text(result, "result", "请填写办理结果", "The result is required")
        via = _enum(Delivery, delivery, "delivery", "请选择结果送达方式")
        payload = Completed(result=text, delivery=via, note=note.strip())
        self._write(number, version, actor, lambda s: [payload])

    def refuse(self, number: str, version: str, actor: Actor, reason: str) -> None:
        """不予受理 / 不予许可 with the reason the notice gives."""
        why = _text(reason, "reason", "请填写不予受理（办理）的理由", "The reason is required")
        self._write(number, version, actor, lambda s: [Refused(reason=why)])

    def deliver(
        self, number: str, version: str, actor: Actor, to: str, via: str, person: str,
        note: str = "",
    ) -> None:  # fmt: skip
        """The result handed over: back to the village agent, or to the citizen."""
        recipient = _enum(Recipient, to, "to", "请选择交给谁")
        how = _enum(Delivery, via, "via", "请选择送达方式")
        who = _text(person, "person", "请填写签收人姓名", "Who received the result?")
        payload = Delivered(to=recipient, via=how, person=who, note=note.strip())
        self._write(number, version, actor, lambda s: [payload])

    def resolve_conflicts(
        self, number: str, version: str, actor: Actor, event_ids: Iterable[str], note: str
    ) -> None:
        """Staff have dealt with events that arrived in conflict; the note says how."""
        ids = tuple(dict.fromkeys(i.strip() for i in event_ids if i.strip()))
        if not ids:
            raise _bad("event_ids", "请选择要处理的冲突事件", "Choose the conflicting events")
        text = _text(note, "note", "请说明如何处理了冲突", "Say how the conflict was resolved")

        def build(snap: Snapshot) -> list[EventPayload]:
            open_ids = {c.event_id for c in snap.state.conflicts}
            if not set(ids) <= open_ids:
                raise ActionRefused("所选事件已不是待处理的冲突")
            return [ConflictResolved(event_ids=ids, note=text)]

        self._write(number, version, actor, build)

    def follow_up(
        self, number: str, version: str, actor: Actor, step: str, note: str = "",
        deadline: str = "", level: str = "",
    ) -> FollowUpStep:  # fmt: skip
        """One step of following up the case's open 差评, in order (回访 → 整改 → 再次评价 →
        办结回访; an anonymous one starts at 整改); the first sets the deadline, by default
        ``FOLLOW_UP_WORKING_DAYS`` working days after the rating. Returns the step written."""
        chosen: FollowUpStep = _enum(FollowUpStep, step, "step", "请选择回访整改的步骤")
        text = note.strip()
        if chosen is FollowUpStep.CALL_BACK and not text:
            raise _bad("note", "请填写回访情况（群众反映的问题）", "Say what the call back found")
        if chosen is FollowUpStep.FIX and not text:
            raise _bad("note", "请填写整改情况", "Say what was fixed")
        rating: int | None = None
        if chosen is FollowUpStep.RE_RATED:
            if level.strip() not in {"1", "2", "3", "4", "5"}:
                raise _bad("level", "请选择群众再次评价的等级（1–5）", "Choose the level 1–5")
            rating = int(level)
        elif level.strip():
            raise _bad("level", "只有“再次评价”才填写评价等级", "A level goes with re_rated only")
        wanted: date | None = None
        if deadline.strip():
            try:
                wanted = date.fromisoformat(deadline.strip())
            except ValueError:
                raise _bad("deadline", "整改期限不是有效日期", "Not a date") from None

        def build(snap: Snapshot) -> list[EventPayload]:
            found = follow_up_round(snap.state, snap.events)
            if found is None or not found.open:
                raise ActionRefused("本件没有待回访的差评")
            expected = found.next_steps()
            if chosen not in expected:
                if chosen is FollowUpStep.CALL_BACK and found.anonymous:
                    raise ActionRefused("匿名差评无法回访，请直接“整改”")
                shown = "或".join(f"“{s.label}”" for s in expected)
                raise ActionRefused(
                    f"回访整改须按“回访→整改→再次评价→办结回访”的顺序进行，"
                    f"下一步应为{shown}，不能“{chosen.label}”"
                )
            fixed: date | None = None
            if not found.steps:
                calendar, _ = district_rules(self.state.couch())
                fixed = found.default_deadline(calendar).day
                if wanted is not None:
                    if wanted < snap.today:
                        raise _bad("deadline", "整改期限不能早于今天", "The deadline is past")
                    fixed = wanted
            elif wanted is not None and wanted != found.deadline:
                raise _bad("deadline", "整改期限已在第一步设定，不能再改",
                           "The deadline was set at the first step")  # fmt: skip
            return [FollowUp(step=chosen, note=text, deadline=fixed, level=rating)]

        self._write(number, version, actor, build)
        return chosen
