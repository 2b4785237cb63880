"""A case's current state: a deterministic fold of its immutable documents.

Events are applied in (HLC stamp, origin, counter) order, so every replica that holds the same
documents computes the same state, whatever order they arrived in. The fold reads documents
only; the one outside fact it takes is ``today``, passed in, for deemed acceptance, an open
suspension and overdue commitments.

    status       event                 next status
    -----------  --------------------  -----------------------------------------------
    draft        submitted             submitted
    submitted    received              received
    submitted    accepted              accepted    (the SLA clock starts)
    received     accepted              accepted
    received     —                     accepted, deemed, the day 5 working days after
                                       ``received`` is over (行政许可法 Art. 32)
    submitted    returned              returned    (one-time notice; the clock stops)
    received     returned              returned
    returned     resubmitted           submitted   (acceptance starts afresh)
    accepted     suspended             suspended   (the time limit pauses)
    suspended    resumed               accepted    (due date moves by the paused working days)
    accepted     completed             completed
    sub/rec/acc  refused               refused
    any open     transferred           transferred (continues as a new linked case)
    draft, open  withdrawn             withdrawn

Other events (received again, assigned, escalated, materials, visits, video sessions, delivered,
rated, follow-ups) record facts without moving the status, in the statuses ``ALLOWED`` lists. An
event that is not allowed where it falls in the order is kept, listed in ``conflicts`` with a
Chinese explanation, and changes nothing; a later ``conflict_resolved`` event clears it.
Documents that cannot be read are listed there too. Nothing is dropped.

Video sessions (视频办) leave the status alone: a session is a way of serving the case, and
staff still accept, complete or hand it to agency or a visit by their own events. The kiosk's
``video_requested`` may reach the township after the node's ``video_started``/``video_ended``
(or sort after them when the kiosk's clock runs ahead), so a session is keyed by its call id and
a late ``video_requested`` fills in the request without moving the session back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import msgspec

from core.calendar import DueDate, WorkCalendar
from core.cases import (
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
    FollowUp,
    FollowUpStep,
    MaterialsReceived,
    MaterialState,
    MaterialStatus,
    Rated,
    RatingChannel,
    Received,
    Recipient,
    Refused,
    Resubmitted,
    Resumed,
    Returned,
    Submitted,
    Suspended,
    SuspendReason,
    Transferred,
    VideoEnded,
    VideoOutcome,
    VideoRequested,
    VideoStarted,
    VisitCancelled,
    VisitOutcome,
    VisitRecorded,
    VisitRequested,
    VisitScheduled,
    Withdrawn,
    case_from_doc,
    event_from_doc,
    is_bad_rating,
    local_date,
)
from core.catalogue import Mode
from core.clock import Hlc
from core.errors import FieldError, InvalidInput

__all__ = [
    "DEEMED_ACCEPTANCE_DAYS",
    "CaseStatus",
    "OPEN",
    "TERMINAL",
    "ALLOWED",
    "allowed_kinds",
    "Effect",
    "Conflict",
    "VisitStatus",
    "Visit",
    "VideoStatus",
    "VideoSession",
    "RatingRecord",
    "Handover",
    "TimelineEntry",
    "CaseState",
    "fold",
]

DEEMED_ACCEPTANCE_DAYS = 5
"""Working days after ``received`` within which a case must be accepted or returned."""


class CaseStatus(StrEnum):
    """Where a case stands."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    SUSPENDED = "suspended"
    RETURNED = "returned"
    COMPLETED = "completed"
    REFUSED = "refused"
    TRANSFERRED = "transferred"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        """Chinese name."""
        return _STATUS_LABELS[self.value]


_STATUS_LABELS = {
    "draft": "草稿",
    "submitted": "已提交",
    "received": "已接收",
    "accepted": "已受理",
    "suspended": "中止计时",
    "returned": "已退回补正",
    "completed": "已办结",
    "refused": "不予受理（办理）",
    "transferred": "已移交",
    "withdrawn": "已撤回",
}

S = CaseStatus
K = EventKind

OPEN = frozenset({S.SUBMITTED, S.RECEIVED, S.ACCEPTED, S.SUSPENDED, S.RETURNED})
"""Statuses in which a case is still being worked."""

TERMINAL = frozenset({S.COMPLETED, S.REFUSED, S.TRANSFERRED, S.WITHDRAWN})
"""Statuses a case never leaves."""

_NOT_DRAFT = frozenset(S) - {S.DRAFT}

ALLOWED: dict[EventKind, frozenset[CaseStatus]] = {
    K.SUBMITTED: frozenset({S.DRAFT}),
    K.RECEIVED: _NOT_DRAFT,
    K.ACCEPTED: frozenset({S.SUBMITTED, S.RECEIVED}),
    K.RETURNED: frozenset({S.SUBMITTED, S.RECEIVED}),
    K.RESUBMITTED: frozenset({S.RETURNED}),
    K.MATERIALS_RECEIVED: OPEN,
    K.COMMITMENT_FULFILLED: _NOT_DRAFT - {S.TRANSFERRED, S.WITHDRAWN},
    K.ASSIGNED: OPEN,
    K.ESCALATED: frozenset({S.SUBMITTED, S.RECEIVED, S.ACCEPTED, S.SUSPENDED}),
    K.TRANSFERRED: OPEN,
    K.SUSPENDED: frozenset({S.ACCEPTED}),
    K.RESUMED: frozenset({S.SUSPENDED}),
    K.VISIT_REQUESTED: OPEN,
    K.VISIT_SCHEDULED: OPEN,
    K.VISIT_CANCELLED: _NOT_DRAFT,
    K.VISIT_RECORDED: OPEN | {S.COMPLETED, S.REFUSED},
    K.VIDEO_REQUESTED: OPEN,
    # A session that took place is recorded whatever the case did meanwhile.
    K.VIDEO_STARTED: _NOT_DRAFT,
    K.VIDEO_ENDED: _NOT_DRAFT,
    K.COMPLETED: frozenset({S.ACCEPTED}),
    K.REFUSED: frozenset({S.SUBMITTED, S.RECEIVED, S.ACCEPTED}),
    K.WITHDRAWN: OPEN | {S.DRAFT},
    K.DELIVERED: frozenset({S.COMPLETED, S.REFUSED}),
    K.RATED: _NOT_DRAFT,
    K.FOLLOW_UP: _NOT_DRAFT,
    K.CONFLICT_RESOLVED: frozenset(S),
}
"""For each event kind, the statuses it may occur in (further checks follow in the fold)."""


def allowed_kinds(status: CaseStatus) -> frozenset[EventKind]:
    """The event kinds a case in ``status`` may take: what a console may offer."""
    return frozenset(kind for kind, statuses in ALLOWED.items() if status in statuses)


class Effect(StrEnum):
    """What an event did in the fold."""

    APPLIED = "applied"
    CONFLICT = "conflict"
    INVALID = "invalid"


class Conflict(msgspec.Struct, frozen=True, kw_only=True):
    """An event kept but not applied, with why; ``resolved_by`` once staff dealt with it."""

    event_id: str
    kind: str
    status: CaseStatus
    message: str
    message_en: str = ""
    resolved_by: str | None = None
    resolution: str = ""


class VisitStatus(StrEnum):
    """Where a home visit stands."""

    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    DONE = "done"
    ABSENT = "absent"
    MORE_MATERIALS = "more_materials"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "requested": "待确认",
            "scheduled": "已安排",
            "cancelled": "已取消",
            "done": "已上门",
            "absent": "群众不在家",
            "more_materials": "需补充材料",
        }[self.value]


class Visit(msgspec.Struct, frozen=True, kw_only=True):
    """A home visit of the case."""

    visit_id: str
    status: VisitStatus
    day: date
    period: str
    staff: str = ""
    staff_name: str = ""


class VideoStatus(StrEnum):
    """Where a video session stands."""

    REQUESTED = "requested"
    IN_CALL = "in_call"
    ENDED = "ended"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"requested": "已呼叫", "in_call": "通话中", "ended": "已结束"}[self.value]


class VideoSession(msgspec.Struct, frozen=True, kw_only=True):
    """One video session of the case (a call from the kiosk answered at the township)."""

    call_id: str
    status: VideoStatus
    requested_at: datetime | None = None
    started_at: datetime | None = None
    staff: str = ""
    staff_name: str = ""
    duration_s: int | None = None
    outcome: VideoOutcome | None = None
    note: str = ""


class RatingRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One rating the case received."""

    event_id: str
    level: int
    channel: RatingChannel
    on: date
    text: str = ""
    visit_id: str | None = None


class Handover(msgspec.Struct, frozen=True, kw_only=True):
    """The result handed to the village agent or the citizen."""

    to: Recipient
    via: Delivery
    on: date
    person: str = ""


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event as the fold met it, for the case timeline."""

    event_id: str
    kind: str
    wall_time: datetime | None
    author: str
    origin: str
    effect: Effect
    status_after: CaseStatus


class CaseState(msgspec.Struct, frozen=True, kw_only=True):
    """A case as its documents say it stands (storable as JSON in a read model)."""

    case_id: str
    case_number: str
    status: CaseStatus
    handling_unit: str
    mode: Mode
    assignee: str | None = None
    assignee_name: str = ""
    submitted_on: date | None = None
    received_on: date | None = None
    receiver: str | None = None
    deemed_on: DueDate | None = None
    accepted_on: date | None = None
    accepted_deemed: bool = False
    due: DueDate | None = None
    expected_due: DueDate | None = None
    paused_days: int = 0
    suspended_since: date | None = None
    suspend_reason: SuspendReason | None = None
    returns: int = 0
    notice: Returned | None = None
    completed_on: date | None = None
    result: str = ""
    delivery: Delivery | None = None
    on_time: bool | None = None
    refused_on: date | None = None
    refused_reason: str = ""
    transferred_to: str | None = None
    new_case_id: str | None = None
    withdrawn_on: date | None = None
    materials: tuple[MaterialState, ...] = ()
    overdue_commitments: tuple[str, ...] = ()
    visits: tuple[Visit, ...] = ()
    video_sessions: tuple[VideoSession, ...] = ()
    handovers: tuple[Handover, ...] = ()
    ratings: tuple[RatingRecord, ...] = ()
    follow_up_open: bool = False
    follow_up_deadline: date | None = None
    conflicts: tuple[Conflict, ...] = ()
    resolved_conflicts: tuple[Conflict, ...] = ()
    skewed_clocks: tuple[str, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    last_hlc: str = ""

    @property
    def last_stamp(self) -> Hlc:
        """The latest stamp among the case's documents: pass it as ``tick(after=…)``."""
        return Hlc.parse(self.last_hlc)


class _Refusal(Exception):
    """Raised inside the fold when an event cannot apply where it falls."""

    def __init__(self, message: str, message_en: str) -> None:
        super().__init__(message)
        self.message = message
        self.message_en = message_en


def _not_allowed(kind: EventKind, status: CaseStatus) -> _Refusal:
    return _Refusal(
        f"“{kind.label}”不能发生在“{status.label}”状态，该事件已保留，请工作人员核实处理",
        f"{kind.value} is not allowed while the case is {status.value}; kept for staff",
    )


class _Folder:
    """The mutable state of one fold; ``finish`` freezes it."""

    def __init__(self, case: Case, calendar: WorkCalendar) -> None:
        self.case = case
        self.cal = calendar
        self.status = S.DRAFT
        self.handling_unit = case.handling_unit
        self.assignee: str | None = None
        self.assignee_name = ""
        self.submitted_on: date | None = None
        self.arrived_on: date | None = None  # the latest (re)submission: the expected clock
        self.received_on: date | None = None
        self.receiver: str | None = None
        self.deemed_on: DueDate | None = None
        self.accepted_on: date | None = None
        self.accepted_deemed = False
        self.acknowledged = False
        self.paused_days = 0
        self.paused_provisional = False
        self.suspended_since: date | None = None
        self.suspend_reason: SuspendReason | None = None
        self.returns = 0
        self.notice: Returned | None = None
        self.completed_on: date | None = None
        self.result = ""
        self.delivery: Delivery | None = None
        self.refused_on: date | None = None
        self.refused_reason = ""
        self.transferred_to: str | None = None
        self.new_case_id: str | None = None
        self.withdrawn_on: date | None = None
        self.materials: dict[str, MaterialState] = {m.key: m for m in case.materials}
        self.visits: dict[str, Visit] = {}
        self.video: dict[str, VideoSession] = {}
        self.handovers: list[Handover] = []
        self.ratings: list[RatingRecord] = []
        self.follow_up_open = False
        self.follow_up_deadline: date | None = None
        self.conflicts: dict[str, Conflict] = {}
        self.resolved: list[Conflict] = []
        self.skewed: set[str] = set()
        self.timeline: list[TimelineEntry] = []
        self.unreadable: list[tuple[str, str]] = []
        self.last = case.stamp

    # -- driving ------------------------------------------------------------------------------

    def apply(self, event: CaseEvent) -> None:
        day = local_date(event.wall_time)
        self.last = max(self.last, event.stamp)
        # Deemed acceptance is observed through the receiving unit's own (server-timed) events
        # and through ``today``, never through a kiosk's clock.
        if self.status is S.RECEIVED and event.origin.unit == self.receiver:
            self.deem_if_past(day)
        try:
            if (event.village, event.township) != (self.case.village, self.case.township):
                raise _Refusal(
                    "事件所属的村、镇街与办件不一致，该事件已保留，请工作人员核实处理",
                    "The event names another village or township than its case",
                )
            self.check_allowed(event.kind)
            self.dispatch(event, day)
        except _Refusal as refusal:
            message, message_en = refusal.message, refusal.message_en
            earlier = self.conflicts.get(event.id)  # e.g. two versions of this event were seen
            if earlier is not None:
                message = f"{earlier.message}；{message}"
                message_en = f"{earlier.message_en}; {message_en}"
            self.conflicts[event.id] = Conflict(
                event_id=event.id,
                kind=event.kind.value,
                status=self.status,
                message=message,
                message_en=message_en,
            )
            self.note(event, Effect.CONFLICT)
        else:
            self.note(event, Effect.APPLIED)

    def invalid(self, event_id: str, kind: str, message: str, message_en: str) -> None:
        self.conflicts[event_id] = Conflict(
            event_id=event_id,
            kind=kind,
            status=self.status,
            message=message,
            message_en=message_en,
        )
        self.unreadable.append((event_id, kind))

    def note(self, event: CaseEvent, effect: Effect) -> None:
        self.timeline.append(
            TimelineEntry(
                event_id=event.id,
                kind=event.kind.value,
                wall_time=event.wall_time,
                author=event.author,
                origin=event.origin.key,
                effect=effect,
                status_after=self.status,
            )
        )

    def check_allowed(self, kind: EventKind) -> None:
        if self.status in ALLOWED[kind]:
            return
        if kind is K.ACCEPTED and self.accepted_deemed and not self.acknowledged:
            if self.status in (S.ACCEPTED, S.SUSPENDED):
                return  # staff confirm a deemed acceptance: recorded, nothing moves
        if kind is K.RETURNED and self.accepted_deemed and self.deemed_on is not None:
            raise _Refusal(
                f"接收后{DEEMED_ACCEPTANCE_DAYS}个工作日内未受理也未退回，已于"
                f"{self.deemed_on.day.isoformat()}视为受理，不能再退回补正；该事件已保留，请工作人员核实处理",
                "The case was deemed accepted; it can no longer be returned",
            )
        raise _not_allowed(kind, self.status)

    def deem_if_past(self, day: date) -> None:
        """Deem the case accepted if ``day`` is after the last day to accept or return it."""
        if self.status is S.RECEIVED and self.deemed_on is not None and day > self.deemed_on.day:
            self.status = S.ACCEPTED
            self.accepted_on = self.deemed_on.day
            self.accepted_deemed = True

    def dispatch(self, event: CaseEvent, day: date) -> None:
        p = event.payload
        if isinstance(p, Submitted):
            self.status = S.SUBMITTED
            self.submitted_on = self.submitted_on or day
            self.arrived_on = day
        elif isinstance(p, Received):
            self.on_received(p)
        elif isinstance(p, Accepted):
            if self.status in (S.SUBMITTED, S.RECEIVED):
                self.status = S.ACCEPTED
                self.accepted_on = day
            else:
                self.acknowledged = True
        elif isinstance(p, Returned):
            self.on_returned(p)
        elif isinstance(p, Resubmitted):
            self.mark(p.provided, MaterialStatus.PROVIDED)
            self.status = S.SUBMITTED
            self.arrived_on = day
            self.received_on = self.receiver = self.deemed_on = None
            self.notice = None
        elif isinstance(p, MaterialsReceived | CommitmentFulfilled):
            self.mark(p.keys, MaterialStatus.PROVIDED)
        elif isinstance(p, Assigned):
            self.assignee, self.assignee_name = p.staff, p.staff_name
        elif isinstance(p, Escalated):
            self.handling_unit = p.to_unit
        elif isinstance(p, Transferred):
            self.status = S.TRANSFERRED
            self.transferred_to, self.new_case_id = p.to_township, p.new_case_id
        elif isinstance(p, Suspended):
            self.status = S.SUSPENDED
            self.suspended_since, self.suspend_reason = day, p.reason
        elif isinstance(p, Resumed):
            if self.suspended_since is not None:
                self.pause(self.suspended_since, day)
            self.status = S.ACCEPTED
            self.suspended_since = self.suspend_reason = None
        elif isinstance(p, VisitRequested | VisitScheduled | VisitCancelled | VisitRecorded):
            self.on_visit(p)
        elif isinstance(p, VideoRequested | VideoStarted | VideoEnded):
            self.on_video(p, event.wall_time)
        elif isinstance(p, Completed):
            self.status = S.COMPLETED
            self.completed_on, self.result, self.delivery = day, p.result, p.delivery
        elif isinstance(p, Refused):
            self.status = S.REFUSED
            self.refused_on, self.refused_reason = day, p.reason
        elif isinstance(p, Withdrawn):
            self.status = S.WITHDRAWN
            self.withdrawn_on = day
        elif isinstance(p, Delivered):
            self.handovers.append(Handover(to=p.to, via=p.via, on=day, person=p.person))
        elif isinstance(p, Rated):
            self.ratings.append(
                RatingRecord(
                    event_id=event.id,
                    level=p.level,
                    channel=p.channel,
                    on=day,
                    text=p.text,
                    visit_id=p.visit_id,
                )
            )
            if is_bad_rating(p.level):
                self.follow_up_open = True
        elif isinstance(p, FollowUp):
            self.on_follow_up(p)
        elif isinstance(p, ConflictResolved):
            self.on_resolved(event, p)

    # -- the kinds with more to them ----------------------------------------------------------

    def on_received(self, p: Received) -> None:
        if p.skew_clamped and p.sender:
            self.skewed.add(p.sender)
        if self.status is S.SUBMITTED:
            self.status = S.RECEIVED
            self.received_on = local_date(p.received_at)
            self.receiver = p.receiver
            self.deemed_on = self.cal.add_working_days(self.received_on, DEEMED_ACCEPTANCE_DAYS)

    def on_returned(self, p: Returned) -> None:
        keys = tuple(m.key for m in p.missing if m.key is not None)
        self.mark(keys, MaterialStatus.MISSING)
        self.status = S.RETURNED
        self.returns += 1
        self.notice = p
        self.arrived_on = self.received_on = self.receiver = self.deemed_on = None

    def mark(self, keys: Iterable[str], status: MaterialStatus) -> None:
        keys = tuple(keys)
        unknown = [k for k in keys if k not in self.materials]
        if unknown:
            shown = "、".join(unknown)
            raise _Refusal(
                f"材料“{shown}”不在本件的材料清单中，该事件已保留，请工作人员核实处理",
                f"Unknown materials: {', '.join(unknown)}",
            )
        for key in keys:
            self.materials[key] = msgspec.structs.replace(
                self.materials[key], status=status, deadline=None
            )

    def pause(self, start: date, end: date) -> None:
        self.paused_days += max(0, self.cal.working_days_between(start, end))
        self.paused_provisional = self.paused_provisional or bool(
            self.cal.provisional_years_in(start, end)
        )

    def on_visit(self, p: VisitRequested | VisitScheduled | VisitCancelled | VisitRecorded) -> None:
        visit = self.visits.get(p.visit_id)
        if isinstance(p, VisitRequested):
            if visit is not None:
                raise _Refusal(
                    f"上门服务 {p.visit_id} 已有记录，不能重复申请", "The visit already exists"
                )
            self.visits[p.visit_id] = Visit(
                visit_id=p.visit_id, status=VisitStatus.REQUESTED, day=p.day, period=p.period
            )
            return
        if isinstance(p, VisitScheduled):
            if visit is not None and visit.status in (VisitStatus.CANCELLED, VisitStatus.DONE):
                raise _Refusal(
                    f"上门服务 {p.visit_id} {visit.status.label}，不能再安排",
                    f"The visit is {visit.status.value}",
                )
            self.visits[p.visit_id] = Visit(
                visit_id=p.visit_id,
                status=VisitStatus.SCHEDULED,
                day=p.day,
                period=p.period,
                staff=p.staff,
                staff_name=p.staff_name,
            )
            return
        if visit is None:
            raise _Refusal(f"没有上门服务 {p.visit_id} 的记录", "No such visit")
        if isinstance(p, VisitCancelled):
            if visit.status in (VisitStatus.CANCELLED, VisitStatus.DONE):
                raise _Refusal(
                    f"上门服务 {p.visit_id} {visit.status.label}，不能取消",
                    f"The visit is {visit.status.value}",
                )
            self.visits[p.visit_id] = msgspec.structs.replace(visit, status=VisitStatus.CANCELLED)
            return
        if visit.status is not VisitStatus.SCHEDULED:
            raise _Refusal(
                f"上门服务 {p.visit_id} {visit.status.label}，不能记录上门结果",
                f"The visit is {visit.status.value}, not scheduled",
            )
        outcome = {
            VisitOutcome.DONE: VisitStatus.DONE,
            VisitOutcome.ABSENT: VisitStatus.ABSENT,
            VisitOutcome.MORE_MATERIALS: VisitStatus.MORE_MATERIALS,
        }[p.outcome]
        self.visits[p.visit_id] = msgspec.structs.replace(visit, status=outcome)

    def on_video(self, p: VideoRequested | VideoStarted | VideoEnded, moment: datetime) -> None:
        session = self.video.get(p.call_id)
        if isinstance(p, VideoRequested):
            if session is not None and session.requested_at is not None:
                raise _Refusal(f"视频呼叫 {p.call_id} 已有记录", "The call was already requested")
            if session is None:
                session = VideoSession(call_id=p.call_id, status=VideoStatus.REQUESTED)
            self.video[p.call_id] = msgspec.structs.replace(session, requested_at=moment)
            return
        if session is not None and session.status is VideoStatus.ENDED:
            raise _Refusal(f"视频通话 {p.call_id} 已结束", "The video session has ended")
        session = session or VideoSession(call_id=p.call_id, status=VideoStatus.REQUESTED)
        if isinstance(p, VideoStarted):
            if session.status is VideoStatus.IN_CALL:
                raise _Refusal(f"视频通话 {p.call_id} 已接通", "The video session already started")
            self.video[p.call_id] = msgspec.structs.replace(
                session,
                status=VideoStatus.IN_CALL,
                started_at=moment,
                staff=p.staff,
                staff_name=p.staff_name,
            )
            return
        self.video[p.call_id] = msgspec.structs.replace(
            session,
            status=VideoStatus.ENDED,
            duration_s=p.duration_s,
            outcome=p.outcome,
            note=p.note,
        )

    def on_follow_up(self, p: FollowUp) -> None:
        if not self.follow_up_open:
            raise _Refusal("本件没有待回访的差评", "There is no open bad rating to follow up")
        if p.deadline is not None:
            self.follow_up_deadline = p.deadline
        if p.step is FollowUpStep.CLOSED:
            self.follow_up_open = False

    def on_resolved(self, event: CaseEvent, p: ConflictResolved) -> None:
        open_ids = [i for i in p.event_ids if i in self.conflicts]
        if not open_ids:
            raise _Refusal(
                "所指的事件没有待处理的冲突", "None of the named events is an open conflict"
            )
        for i in open_ids:
            conflict = self.conflicts.pop(i)
            self.resolved.append(
                msgspec.structs.replace(conflict, resolved_by=event.id, resolution=p.note)
            )

    def unreadable_entries(self) -> Iterable[TimelineEntry]:
        invalid_ids = {i for i, _ in self.unreadable}
        known = {entry.event_id for entry in self.timeline}
        for event_id, kind in self.unreadable:
            if event_id in invalid_ids and event_id not in known:
                yield TimelineEntry(
                    event_id=event_id,
                    kind=kind,
                    wall_time=None,
                    author="",
                    origin="",
                    effect=Effect.INVALID,
                    status_after=self.status,
                )

    # -- the end ------------------------------------------------------------------------------

    def finish(self, today: date | None) -> CaseState:
        if today is not None:
            self.deem_if_past(today)
        limit = self.case.promised_limit_days
        due: DueDate | None = None
        expected: DueDate | None = None
        paused, provisional = self.paused_days, self.paused_provisional
        if self.status is S.SUSPENDED and self.suspended_since is not None and today is not None:
            paused += max(0, self.cal.working_days_between(self.suspended_since, today))
            provisional = provisional or bool(
                self.cal.provisional_years_in(self.suspended_since, today)
            )
        if self.accepted_on is not None:
            fixed = self.cal.add_working_days(self.accepted_on, limit + paused)
            due = DueDate(fixed.day, fixed.provisional or provisional)
        elif self.status in (S.SUBMITTED, S.RECEIVED):
            arrival = self.received_on or self.arrived_on
            if arrival is not None:
                expected = self.cal.add_working_days(arrival, limit)
        on_time = None
        if due is not None and self.completed_on is not None:
            on_time = self.completed_on <= due.day
        overdue: tuple[str, ...] = ()
        if today is not None and self.status not in (
            S.DRAFT,
            S.REFUSED,
            S.TRANSFERRED,
            S.WITHDRAWN,
        ):
            overdue = tuple(
                m.key
                for m in self.materials.values()
                if m.status is MaterialStatus.TO_FOLLOW and m.deadline and m.deadline < today
            )
        return CaseState(
            case_id=self.case.id,
            case_number=self.case.case_number,
            status=self.status,
            handling_unit=self.handling_unit,
            mode=self.case.mode,
            assignee=self.assignee,
            assignee_name=self.assignee_name,
            submitted_on=self.submitted_on,
            received_on=self.received_on,
            receiver=self.receiver,
            deemed_on=self.deemed_on,
            accepted_on=self.accepted_on,
            accepted_deemed=self.accepted_deemed,
            due=due,
            expected_due=expected,
            paused_days=paused,
            suspended_since=self.suspended_since,
            suspend_reason=self.suspend_reason,
            returns=self.returns,
            notice=self.notice,
            completed_on=self.completed_on,
            result=self.result,
            delivery=self.delivery,
            on_time=on_time,
            refused_on=self.refused_on,
            refused_reason=self.refused_reason,
            transferred_to=self.transferred_to,
            new_case_id=self.new_case_id,
            withdrawn_on=self.withdrawn_on,
            materials=tuple(self.materials[m.key] for m in self.case.materials),
            overdue_commitments=overdue,
            visits=tuple(sorted(self.visits.values(), key=lambda v: v.visit_id)),
            video_sessions=tuple(self.video.values()),
            handovers=tuple(self.handovers),
            ratings=tuple(self.ratings),
            follow_up_open=self.follow_up_open,
            follow_up_deadline=self.follow_up_deadline,
            conflicts=tuple(self.conflicts.values()),
            resolved_conflicts=tuple(self.resolved),
            skewed_clocks=tuple(sorted(self.skewed)),
            timeline=tuple(self.timeline) + tuple(self.unreadable_entries()),
            last_hlc=self.last.encode(),
        )


def _order(event: CaseEvent) -> tuple[Hlc, str, int]:
    return (event.stamp, event.origin.key, event.counter)


def _read_events(
    case: Case, docs: Iterable[Mapping[str, Any] | CaseEvent]
) -> tuple[list[CaseEvent], list[tuple[str, str, str, str]]]:
    """Parse and de-duplicate; unreadable documents come back as (id, kind, zh, en)."""
    by_id: dict[str, list[CaseEvent]] = {}
    invalid: list[tuple[str, str, str, str]] = []
    for doc in docs:
        if isinstance(doc, CaseEvent):
            event = doc
        else:
            try:
                event = event_from_doc(doc)
            except InvalidInput as exc:
                error = exc.errors[0]
                invalid.append(
                    (
                        str(doc.get("_id", "?")),
                        str(doc.get("kind", "?")),
                        f"无法读取的事件文档，已保留待处理：{error.message}",
                        error.message_en,
                    )
                )
                continue
        if event.case_id != case.id:
            raise InvalidInput(
                FieldError(
                    "events",
                    f"事件 {event.id} 不属于办件 {case.id}",
                    f"Event {event.id} is not of case {case.id}",
                )
            )
        by_id.setdefault(event.id, []).append(event)
    events: list[CaseEvent] = []
    for event_id, versions in by_id.items():
        distinct = sorted({msgspec.json.encode(v, order="sorted") for v in versions})
        chosen = msgspec.json.decode(distinct[0], type=CaseEvent)
        events.append(chosen)
        if len(distinct) > 1:
            invalid.append(
                (
                    event_id,
                    chosen.kind.value,
                    "同一编号的事件有内容不同的多个版本，已按其中一个处理，请工作人员核实",
                    "Several different versions of one event id",
                )
            )
    return events, invalid


def fold(
    case_doc: Mapping[str, Any] | Case,
    event_docs: Iterable[Mapping[str, Any] | CaseEvent],
    calendar: WorkCalendar,
    today: date | None = None,
) -> CaseState:
    """The state of a case from its documents; ``today`` only for deemed acceptance and overdue.

    Raises InvalidInput if the case document cannot be read or an event belongs to another case;
    unreadable event documents are listed as conflicts instead.
    """
    case = case_doc if isinstance(case_doc, Case) else case_from_doc(case_doc)
    events, invalid = _read_events(case, event_docs)
    folder = _Folder(case, calendar)
    # Unreadable documents are conflicts from the start, so a later resolution can clear them.
    for event_id, kind, message, message_en in sorted(invalid):
        folder.invalid(event_id, kind, message, message_en)
    for event in sorted(events, key=_order):
        folder.apply(event)
    return folder.finish(today)
