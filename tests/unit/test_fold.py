"""The case fold: deterministic state from documents, conflicts kept, the SLA clock."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

import msgspec
import pytest

from core.calendar import CalendarException, WorkCalendar
from core.cases import (
    CHINA_TIME,
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
    MaterialState,
    MaterialStatus,
    MissingMaterial,
    Origin,
    Person,
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
    case_id,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CaseType, CatalogueItem, HandlingLevel, Kind, Material, Mode
from core.clock import DAY_MS, HlcClock
from core.errors import InvalidInput
from core.fold import (
    CaseState,
    CaseStatus,
    Effect,
    VideoStatus,
    VisitStatus,
    allowed_kinds,
    fold,
)

VILLAGE = "500109102001"
TOWNSHIP = "500109102000"
OTHER_TOWNSHIP = "500109104000"
CAL = WorkCalendar()
KIOSK = Origin(VILLAGE, "k7f3a9")
NEW_PC = Origin(VILLAGE, "q2m8hx")  # the same village's kiosk after re-enrolment
TOWN = Origin(TOWNSHIP, "t0wn01")

ITEM = CatalogueItem(
    code="500109000015",
    name="高龄津贴申请",
    kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP,
    modes=(Mode.DOOR_TO_DOOR, Mode.AGENCY, Mode.ON_THE_SPOT),
    department="澄江镇社会事务办",
    case_type=CaseType.PROMISED,
    promised_limit_days=15,
    materials=(
        Material(key="id_card", name="身份证"),
        Material(key="hukou", name="户口簿"),
        Material(key="bank_card", name="银行卡", may_follow=True, follow_days=10),
    ),
)


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), CHINA_TIME)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Writer:
    """One origin: its own counter, wall clock (optionally wrong) and HLC."""

    def __init__(self, origin: Origin, author: str, skew_ms: int = 0) -> None:
        self.origin = origin
        self.author = author
        self.skew_ms = skew_ms
        self.now = 0
        self.counter = 0
        self.clock = HlcClock(origin.key, lambda: self.now)

    def set_time(self, moment: datetime) -> datetime:
        """Move this writer's wall clock; returns what the writer believes the time is."""
        self.now = ms(moment) + self.skew_ms
        return datetime.fromtimestamp(self.now / 1000, CHINA_TIME)

    def next(self) -> int:
        self.counter += 1
        return self.counter


class History:
    """A case and its events as writers create them; each writer sees what it is told."""

    def __init__(self, writer: Writer, moment: datetime, limit: int = 15, **changes: object):
        wall = writer.set_time(moment)
        item = msgspec.structs.replace(ITEM, promised_limit_days=limit)
        args: dict[str, object] = {
            "origin": writer.origin,
            "counter": writer.next(),
            "hlc": writer.clock.tick(),
            "wall_time": wall,
            "author": writer.author,
            "village": VILLAGE,
            "township": TOWNSHIP,
            "item": item,
            "catalogue_version": 1,
            "applicant": Person(name="张三", id_number="500109193805120013", phone="13800000000"),
            "mode": Mode.AGENCY,
            "handling_unit": TOWNSHIP,
            "materials": (
                MaterialState(key="id_card", name="身份证", status=MaterialStatus.PROVIDED),
                MaterialState(key="hukou", name="户口簿", status=MaterialStatus.PROVIDED),
                MaterialState(
                    key="bank_card",
                    name="银行卡",
                    status=MaterialStatus.TO_FOLLOW,
                    deadline=wall.date() + timedelta(days=14),
                ),
            ),
        }
        args.update(changes)
        self.case: Case = new_case(**args)  # type: ignore[arg-type]
        self.events: list[CaseEvent] = []

    def add(
        self,
        writer: Writer,
        payload: EventPayload,
        moment: datetime,
        saw: Sequence[CaseEvent] | None = None,
    ) -> CaseEvent:
        """Write an event; ``saw`` is what the writer had of the case (default: everything)."""
        seen = self.events if saw is None else saw
        wall = writer.set_time(moment)
        after = max([self.case.stamp] + [e.stamp for e in seen])
        for stamp in [self.case.stamp] + [e.stamp for e in seen]:
            writer.clock.receive(stamp)
        event = new_event(
            self.case,
            payload,
            origin=writer.origin,
            counter=writer.next(),
            hlc=writer.clock.tick(after=after),
            wall_time=wall,
            author=writer.author,
        )
        self.events.append(event)
        return event

    def docs(self) -> list[dict[str, object]]:
        return [event_to_doc(e) for e in self.events]

    def fold(self, today: date | None = None, calendar: WorkCalendar = CAL) -> CaseState:
        return fold(case_to_doc(self.case), self.docs(), calendar, today)


def received(moment: datetime, sender: str = KIOSK.key, skew: int = 0) -> Received:
    return Received(
        receiver=TOWNSHIP,
        received_at=moment,
        sender=sender,
        sender_skew_ms=skew,
        skew_clamped=skew > DAY_MS,
    )


def kiosk() -> Writer:
    return Writer(KIOSK, "agent01")


def township() -> Writer:
    return Writer(TOWN, "staff01")


MON = date(2026, 11, 30)
TUE, WED, THU = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)


# --- the ordinary path and the due dates -----------------------------------------------------


def test_draft_then_submitted_received_accepted_completed() -> None:
    k, t = kiosk(), township()
    h = History(k, at(MON))
    state = h.fold()
    assert state.status is CaseStatus.DRAFT and state.due is None and state.expected_due is None
    h.add(k, Submitted(), at(MON, 10, 5))
    state = h.fold()
    assert state.status is CaseStatus.SUBMITTED
    assert state.expected_due is not None and state.expected_due.day == date(2026, 12, 21)
    h.add(t, received(at(TUE)), at(TUE))
    state = h.fold()
    assert state.status is CaseStatus.RECEIVED
    assert state.expected_due is not None and state.expected_due.day == date(2026, 12, 22)
    assert state.deemed_on is not None and state.deemed_on.day == date(2026, 12, 8)
    h.add(t, Assigned(staff="staff02", staff_name="李四"), at(TUE, 11))
    h.add(t, Accepted(notice_no="受理〔2026〕12号"), at(WED))
    state = h.fold()
    assert state.status is CaseStatus.ACCEPTED
    assert state.accepted_on == WED and not state.accepted_deemed
    assert state.due is not None and state.due.day == date(2026, 12, 23)
    assert not state.due.provisional and state.expected_due is None
    assert state.assignee == "staff02"
    h.add(t, Completed(result="审核通过", delivery=Delivery.VILLAGE_AGENT), at(date(2026, 12, 10)))
    h.add(t, Delivered(to=Recipient.AGENT, via=Delivery.VILLAGE_AGENT), at(date(2026, 12, 11)))
    h.add(k, Delivered(to=Recipient.CITIZEN, via=Delivery.AT_HOME), at(date(2026, 12, 12)))
    state = h.fold()
    assert state.status is CaseStatus.COMPLETED and state.status.label == "已办结"
    assert state.on_time is True and state.completed_on == date(2026, 12, 10)
    assert [ho.to for ho in state.handovers] == [Recipient.AGENT, Recipient.CITIZEN]
    assert state.conflicts == ()
    assert [e.kind for e in state.timeline] == [
        "submitted",
        "received",
        "assigned",
        "accepted",
        "completed",
        "delivered",
        "delivered",
    ]
    assert all(e.effect is Effect.APPLIED for e in state.timeline)
    assert state.last_stamp == max(e.stamp for e in h.events)


def test_provisional_due_date_across_the_end_of_2026() -> None:
    k, t = kiosk(), township()
    h = History(k, at(date(2026, 12, 18)))
    h.add(k, Submitted(), at(date(2026, 12, 18), 11))
    h.add(t, received(at(date(2026, 12, 21))), at(date(2026, 12, 21)))
    state = h.fold()
    assert state.expected_due is not None
    assert state.expected_due.day == date(2027, 1, 12)  # 元旦 2027 out, provisionally
    assert state.expected_due.provisional
    h.add(t, Accepted(), at(date(2026, 12, 21), 15))
    state = h.fold()
    assert state.due is not None
    assert state.due.day == date(2027, 1, 12) and state.due.provisional
    # Once the district enters the 2027 notice, the same documents give a firm date.
    announced = WorkCalendar(
        exceptions=(CalendarException(date(2027, 1, 1), False, "元旦"),),
        announced_years=frozenset({2027}),
    )
    firm = h.fold(calendar=announced)
    assert firm.due is not None and firm.due.day == date(2027, 1, 12) and not firm.due.provisional
    # A limit that ends within 2026 is firm.
    short = History(k, at(date(2026, 12, 18)), limit=3)
    short.add(k, Submitted(), at(date(2026, 12, 18), 11))
    short.add(t, Accepted(), at(date(2026, 12, 21)))
    state = short.fold()
    assert state.due is not None and state.due.day == date(2026, 12, 24)
    assert not state.due.provisional


def test_immediate_case_on_the_spot_at_the_kiosk() -> None:
    k = kiosk()
    h = History(k, at(MON), limit=0, mode=Mode.ON_THE_SPOT, handling_unit=VILLAGE)
    h.add(k, Submitted(), at(MON, 10, 1))
    h.add(k, Accepted(), at(MON, 10, 2))
    h.add(k, Completed(result="当场办结", delivery=Delivery.WINDOW), at(MON, 10, 20))
    state = h.fold()
    assert state.status is CaseStatus.COMPLETED
    assert state.due is not None and state.due.day == MON and state.on_time


# --- deemed acceptance ------------------------------------------------------------------------


def deemed_history() -> tuple[History, Writer, Writer]:
    k, t = kiosk(), township()
    h = History(k, at(MON))
    h.add(k, Submitted(), at(MON, 10, 5))
    h.add(t, received(at(TUE)), at(TUE))
    return h, k, t


def test_deemed_acceptance_after_five_working_days() -> None:
    h, _, _ = deemed_history()
    last_day = date(2026, 12, 8)  # 5 working days after Tue 12-01
    state = h.fold(today=last_day)
    assert state.status is CaseStatus.RECEIVED  # the unit still has this day
    assert state.expected_due is not None and state.expected_due.day == date(2026, 12, 22)
    state = h.fold(today=date(2026, 12, 9))
    assert state.status is CaseStatus.ACCEPTED and state.accepted_deemed
    assert state.accepted_on == last_day
    assert state.due is not None and state.due.day == date(2026, 12, 29)
    assert h.fold().status is CaseStatus.RECEIVED  # no today, no deeming by the clock


def test_a_late_acceptance_confirms_the_deemed_one() -> None:
    h, _, t = deemed_history()
    h.add(t, Accepted(), at(date(2026, 12, 10)))
    state = h.fold()
    assert state.status is CaseStatus.ACCEPTED
    assert state.accepted_deemed and state.accepted_on == date(2026, 12, 8)
    assert state.conflicts == ()


def test_a_return_after_the_five_days_is_a_conflict() -> None:
    h, _, t = deemed_history()
    late = h.add(
        t, Returned(missing=(MissingMaterial(name="户口簿", key="hukou"),)), at(date(2026, 12, 9))
    )
    state = h.fold()
    assert state.status is CaseStatus.ACCEPTED and state.accepted_deemed
    (conflict,) = state.conflicts
    assert conflict.event_id == late.id
    assert "已于2026-12-08视为受理，不能再退回补正" in conflict.message
    on_time, _, t2 = deemed_history()
    on_time.add(
        t2, Returned(missing=(MissingMaterial(name="户口簿", key="hukou"),)), at(date(2026, 12, 8))
    )
    assert on_time.fold(today=date(2026, 12, 20)).status is CaseStatus.RETURNED


def test_a_kiosk_clock_cannot_deem_a_case_accepted() -> None:
    h, _, _ = deemed_history()
    fast = Writer(KIOSK, "agent01", skew_ms=365 * DAY_MS)
    fast.counter = 10
    h.add(fast, VisitRequested(visit_id="v1", day=date(2026, 12, 4), period="am"), at(TUE, 12))
    assert h.fold().status is CaseStatus.RECEIVED


# --- return, resubmission, suspension ---------------------------------------------------------


def test_return_stops_the_clock_and_resubmission_starts_it_again() -> None:
    k, t = kiosk(), township()
    h = History(k, at(MON))
    h.add(k, Submitted(), at(MON, 10, 5))
    h.add(t, received(at(TUE)), at(TUE))
    notice = Returned(
        missing=(
            MissingMaterial(name="户口簿", key="hukou", note="须有户主页"),
            MissingMaterial(name="村委会出具的居住证明"),
        ),
        reason="材料不全",
    )
    h.add(t, notice, at(WED))
    state = h.fold(today=date(2026, 12, 20))
    assert state.status is CaseStatus.RETURNED  # returned within the 5 days: never deemed
    assert state.expected_due is None and state.due is None and state.deemed_on is None
    assert state.notice == notice and state.returns == 1
    assert {m.key: m.status for m in state.materials}["hukou"] is MaterialStatus.MISSING
    monday = date(2026, 12, 7)
    h.add(k, Resubmitted(provided=("hukou",)), at(monday))
    state = h.fold()
    assert state.status is CaseStatus.SUBMITTED and state.notice is None
    assert state.expected_due is not None and state.expected_due.day == date(2026, 12, 28)
    assert {m.key: m.status for m in state.materials}["hukou"] is MaterialStatus.PROVIDED
    h.add(t, received(at(date(2026, 12, 8))), at(date(2026, 12, 8)))
    state = h.fold()
    assert state.deemed_on is not None and state.deemed_on.day == date(2026, 12, 15)
    h.add(t, Accepted(), at(date(2026, 12, 9)))
    state = h.fold()
    assert state.accepted_on == date(2026, 12, 9)
    assert state.due is not None and state.due.day == date(2026, 12, 30)
    assert state.returns == 1 and state.submitted_on == MON


def accepted_history() -> tuple[History, Writer]:
    k, t = kiosk(), township()
    h = History(k, at(MON))
    h.add(k, Submitted(), at(MON, 10, 5))
    h.add(t, received(at(TUE)), at(TUE))
    h.add(t, Accepted(), at(TUE, 14))
    return h, t


def test_suspension_extends_the_due_date_by_the_paused_working_days() -> None:
    h, t = accepted_history()
    assert h.fold().due == CAL.add_working_days(TUE, 15)  # 12-22
    h.add(t, Suspended(reason=SuspendReason.EXPERT_REVIEW), at(THU))
    state = h.fold(today=date(2026, 12, 7))
    assert state.status is CaseStatus.SUSPENDED
    assert state.suspend_reason is SuspendReason.EXPERT_REVIEW
    assert state.paused_days == 2  # Fri 12-04 and Mon 12-07 so far
    assert state.due is not None and state.due.day == date(2026, 12, 24)
    assert h.fold().paused_days == 0  # without today an open pause is not counted yet
    h.add(t, Resumed(), at(date(2026, 12, 8)))
    state = h.fold(today=date(2026, 12, 20))
    assert state.status is CaseStatus.ACCEPTED and state.paused_days == 3
    assert state.due is not None and state.due.day == date(2026, 12, 25)
    h.add(t, Completed(result="批准", delivery=Delivery.WINDOW), at(date(2026, 12, 24)))
    assert h.fold().on_time is True


def test_suspension_reaching_into_2027_makes_the_due_date_provisional() -> None:
    h, t = accepted_history()
    h.add(t, Suspended(reason=SuspendReason.INSPECTION), at(date(2026, 12, 14)))
    h.add(t, Resumed(), at(date(2027, 1, 5)))
    state = h.fold()
    assert state.due is not None and state.due.provisional


# --- conflicts --------------------------------------------------------------------------------


def concurrent_history(township_first: bool) -> tuple[History, CaseEvent, list[CaseEvent]]:
    """The kiosk completes an on-the-spot case while the township, not yet seeing that, returns it.

    ``township_first`` decides whose events carry the earlier stamps.
    """
    k, t = kiosk(), township()
    h = History(k, at(MON), limit=0, mode=Mode.ON_THE_SPOT, handling_unit=VILLAGE)
    submitted = h.add(k, Submitted(), at(MON, 10, 1))
    base = [submitted]
    kiosk_minute, town_minute = (30, 10) if township_first else (10, 20)
    t_received = h.add(t, received(at(MON, 11, town_minute)), at(MON, 11, town_minute), saw=base)
    returned = h.add(
        t,
        Returned(missing=(MissingMaterial(name="户口簿", key="hukou"),)),
        at(MON, 11, town_minute + 1),
        saw=[*base, t_received],
    )
    accepted = h.add(k, Accepted(), at(MON, 11, kiosk_minute), saw=base)
    completed = h.add(
        k,
        Completed(result="当场办结", delivery=Delivery.WINDOW),
        at(MON, 11, 45),
        saw=[*base, accepted],
    )
    return h, returned, [accepted, completed]


def test_kiosk_completes_while_township_returns_keeps_the_return_as_conflict() -> None:
    h, returned, _ = concurrent_history(township_first=False)
    state = h.fold()
    assert state.status is CaseStatus.COMPLETED
    (conflict,) = state.conflicts
    assert conflict.event_id == returned.id and conflict.kind == "returned"
    assert conflict.status is CaseStatus.ACCEPTED
    assert conflict.message == (
        "“退回补正（一次性告知）”不能发生在“已受理”状态，该事件已保留，请工作人员核实处理"
    )
    assert conflict.message_en
    entry = next(e for e in state.timeline if e.event_id == returned.id)
    assert entry.effect is Effect.CONFLICT
    assert len(state.timeline) == len(h.events)  # nothing dropped


def test_township_returns_first_keeps_the_kiosk_completion_as_conflicts() -> None:
    h, _, kiosk_events = concurrent_history(township_first=True)
    state = h.fold()
    assert state.status is CaseStatus.RETURNED
    assert [c.event_id for c in state.conflicts] == [e.id for e in kiosk_events]
    assert all(c.status is CaseStatus.RETURNED for c in state.conflicts)


def test_staff_resolve_a_conflict() -> None:
    h, returned, _ = concurrent_history(township_first=False)
    t = township()
    t.counter = 100
    resolution = h.add(
        t, ConflictResolved(event_ids=(returned.id,), note="已当场办结，退回作废"), at(TUE)
    )
    state = h.fold()
    assert state.conflicts == ()
    (resolved,) = state.resolved_conflicts
    assert resolved.event_id == returned.id
    assert resolved.resolved_by == resolution.id and resolved.resolution == "已当场办结，退回作废"
    assert state.status is CaseStatus.COMPLETED
    # Resolving again has nothing left to resolve: that is itself a conflict.
    again = h.add(t, ConflictResolved(event_ids=(returned.id,), note="再次处理"), at(WED))
    assert [c.event_id for c in h.fold().conflicts] == [again.id]


def test_events_after_a_terminal_status_are_conflicts() -> None:
    h, t = accepted_history()
    new_id = case_id(Origin(OTHER_TOWNSHIP, "t0wn02"), 1)
    h.add(t, Transferred(to_township=OTHER_TOWNSHIP, new_case_id=new_id), at(WED))
    late = h.add(t, Completed(result="办结", delivery=Delivery.WINDOW), at(THU))
    state = h.fold()
    assert state.status is CaseStatus.TRANSFERRED and state.new_case_id == new_id
    assert [c.event_id for c in state.conflicts] == [late.id]
    assert state.conflicts[0].message.startswith("“办结”不能发生在“已移交”状态")


def test_unreadable_event_documents_are_listed_not_dropped() -> None:
    h, t = accepted_history()
    docs = h.docs()
    broken = dict(docs[-1])
    broken["_id"] = broken["_id"][:-1] + "9"  # the id no longer matches its counter
    state = fold(case_to_doc(h.case), [*docs, broken], CAL)
    assert state.status is CaseStatus.ACCEPTED
    (conflict,) = state.conflicts
    assert conflict.event_id == broken["_id"]
    assert conflict.message.startswith("无法读取的事件文档")
    assert state.timeline[-1].effect is Effect.INVALID
    t.counter = 50
    fix = h.add(t, ConflictResolved(event_ids=(str(broken["_id"]),), note="坏文档，忽略"), at(WED))
    state = fold(case_to_doc(h.case), [*h.docs(), broken], CAL)
    assert state.conflicts == () and state.resolved_conflicts[0].resolved_by == fix.id


def test_two_different_versions_of_one_event_are_reported() -> None:
    h, _ = accepted_history()
    docs = h.docs()
    other = json.loads(json.dumps(docs[-1]))
    other["payload"]["notice_no"] = "另一个编号"
    state = fold(case_to_doc(h.case), [*docs, other], CAL)
    assert [c.event_id for c in state.conflicts] == [other["_id"]]
    assert "多个版本" in state.conflicts[0].message


def test_an_event_of_another_case_is_a_caller_error() -> None:
    h, _ = accepted_history()
    k2 = Writer(NEW_PC, "agent02")
    stranger = History(k2, at(MON))
    stray = stranger.add(k2, Submitted(), at(MON, 11))
    with pytest.raises(InvalidInput):
        fold(h.case, [*h.events, stray], CAL)


def test_event_naming_another_village_is_a_conflict() -> None:
    h, t = accepted_history()
    good = h.add(t, Assigned(staff="staff03"), at(WED))
    doc = event_to_doc(good)
    doc["village"] = "500109102002"
    state = fold(case_to_doc(h.case), [*h.docs()[:-1], doc], CAL)
    (conflict,) = state.conflicts
    assert conflict.event_id == good.id and "与办件不一致" in conflict.message
    assert state.assignee is None


# --- materials, visits, ratings -----------------------------------------------------------------


def test_overdue_commitment_and_its_fulfilment() -> None:
    h, t = accepted_history()
    assert h.fold(today=date(2026, 12, 14)).overdue_commitments == ()
    assert h.fold(today=date(2026, 12, 15)).overdue_commitments == ("bank_card",)
    h.add(t, CommitmentFulfilled(keys=("bank_card",)), at(date(2026, 12, 16)))
    state = h.fold(today=date(2026, 12, 17))
    assert state.overdue_commitments == ()
    assert {m.key: m.status for m in state.materials}["bank_card"] is MaterialStatus.PROVIDED


def test_home_visits() -> None:
    h, t = accepted_history()
    k = kiosk()
    k.counter = 20
    h.add(k, VisitRequested(visit_id="v1", day=date(2026, 12, 4), period="am"), at(WED))
    assert h.fold().visits[0].status is VisitStatus.REQUESTED
    h.add(t, VisitScheduled(visit_id="v1", day=date(2026, 12, 4), period="pm", staff="s1"), at(WED))
    h.add(t, VisitRecorded(visit_id="v1", outcome=VisitOutcome.ABSENT), at(date(2026, 12, 4)))
    h.add(t, VisitScheduled(visit_id="v1", day=date(2026, 12, 7), period="am", staff="s1"), at(THU))
    h.add(t, VisitRecorded(visit_id="v1", outcome=VisitOutcome.DONE), at(date(2026, 12, 7)))
    bad = h.add(t, VisitCancelled(visit_id="v1"), at(date(2026, 12, 8)))
    unknown = h.add(
        t, VisitRecorded(visit_id="v9", outcome=VisitOutcome.DONE), at(date(2026, 12, 8))
    )
    state = h.fold()
    (visit,) = state.visits
    assert (visit.status, visit.day, visit.period) == (VisitStatus.DONE, date(2026, 12, 7), "am")
    assert [c.event_id for c in state.conflicts] == [bad.id, unknown.id]
    assert state.conflicts[1].message == "没有上门服务 v9 的记录"


def test_video_sessions_are_listed_and_leave_the_status_alone() -> None:
    h, t = accepted_history()
    k = kiosk()
    k.counter = 40
    h.add(k, VideoRequested(call_id="c1"), at(WED, 9))
    state = h.fold()
    (session,) = state.video_sessions
    assert (session.status, session.requested_at) == (VideoStatus.REQUESTED, at(WED, 9))
    h.add(t, VideoStarted(call_id="c1", staff="s1", staff_name="李"), at(WED, 9, 1))
    assert h.fold().video_sessions[0].status is VideoStatus.IN_CALL
    h.add(
        t,
        VideoEnded(call_id="c1", duration_s=300, outcome=VideoOutcome.FOLLOW_UP_VISIT, note="n"),
        at(WED, 9, 6),
    )
    again = h.add(t, VideoStarted(call_id="c1", staff="s1"), at(WED, 10))
    twice = h.add(k, VideoRequested(call_id="c1"), at(WED, 11))
    state = h.fold()
    (session,) = state.video_sessions
    assert session.status is VideoStatus.ENDED
    assert (session.staff, session.duration_s, session.outcome, session.note) == (
        "s1",
        300,
        VideoOutcome.FOLLOW_UP_VISIT,
        "n",
    )
    assert state.status is CaseStatus.ACCEPTED
    assert [c.event_id for c in state.conflicts] == [again.id, twice.id]
    assert VideoOutcome.FAILED.label == "未能完成"
    assert EventKind.VIDEO_ENDED.label == "视频结束"


def test_a_late_video_request_fills_in_without_moving_the_session_back() -> None:
    h, t = accepted_history()
    fast = Writer(KIOSK, "agent01", skew_ms=3_600_000)  # the kiosk's clock an hour ahead
    fast.counter = 40
    saw = list(h.events)
    h.add(t, VideoStarted(call_id="c2", staff="s1"), at(WED, 9, 1), saw=saw)
    h.add(
        t,
        VideoEnded(call_id="c2", duration_s=60, outcome=VideoOutcome.SERVED),
        at(WED, 9, 2),
        saw=saw,
    )
    h.add(fast, VideoRequested(call_id="c2"), at(WED, 9), saw=saw)
    state = h.fold()
    (session,) = state.video_sessions
    assert session.status is VideoStatus.ENDED and session.requested_at is not None
    assert state.conflicts == ()


def test_video_request_needs_an_open_case_but_its_record_does_not() -> None:
    h = History(kiosk(), at(MON))
    early = h.add(kiosk(), VideoRequested(call_id="c3"), at(MON, 11))
    assert [c.event_id for c in h.fold().conflicts] == [early.id]
    assert EventKind.VIDEO_REQUESTED not in allowed_kinds(CaseStatus.COMPLETED)
    assert EventKind.VIDEO_ENDED in allowed_kinds(CaseStatus.COMPLETED)


def test_bad_rating_opens_a_follow_up_until_closed() -> None:
    h, t = accepted_history()
    k = kiosk()
    k.counter = 30
    stray = h.add(t, FollowUp(step=FollowUpStep.CALL_BACK), at(WED))
    h.add(t, Completed(result="批准", delivery=Delivery.WINDOW), at(THU))
    h.add(k, Rated(level=1, channel=RatingChannel.KIOSK, text="跑了两趟"), at(date(2026, 12, 4)))
    state = h.fold()
    assert state.follow_up_open and state.ratings[0].level == 1
    assert [c.event_id for c in state.conflicts] == [stray.id]
    h.add(
        t,
        FollowUp(step=FollowUpStep.CALL_BACK, deadline=date(2026, 12, 11)),
        at(date(2026, 12, 7)),
    )
    h.add(t, FollowUp(step=FollowUpStep.RE_RATED, level=4), at(date(2026, 12, 9)))
    state = h.fold()
    assert state.follow_up_open and state.follow_up_deadline == date(2026, 12, 11)
    h.add(t, FollowUp(step=FollowUpStep.CLOSED), at(date(2026, 12, 10)))
    assert not h.fold().follow_up_open


def test_escalation_refusal_and_withdrawal() -> None:
    h, t = accepted_history()
    h.add(t, Escalated(to_unit="500109000000", reason="区级事项"), at(WED))
    assert h.fold().handling_unit == "500109000000"
    h.add(t, Refused(reason="不符合条件"), at(THU))
    state = h.fold()
    assert state.status is CaseStatus.REFUSED and state.refused_reason == "不符合条件"
    k = kiosk()
    h2 = History(k, at(MON))
    h2.add(k, Withdrawn(reason="申请人撤回"), at(MON, 12))
    assert h2.fold().status is CaseStatus.WITHDRAWN


def test_allowed_kinds_for_a_console() -> None:
    assert EventKind.COMPLETED in allowed_kinds(CaseStatus.ACCEPTED)
    assert EventKind.RETURNED not in allowed_kinds(CaseStatus.ACCEPTED)
    assert allowed_kinds(CaseStatus.DRAFT) == {
        EventKind.SUBMITTED,
        EventKind.WITHDRAWN,
        EventKind.CONFLICT_RESOLVED,
    }


# --- a kiosk clock a year fast ------------------------------------------------------------------


def test_kiosk_a_year_fast_is_ordered_correctly_and_flagged() -> None:
    fast = Writer(KIOSK, "agent01", skew_ms=365 * DAY_MS)
    t = township()
    h = History(fast, at(MON))
    h.add(fast, Submitted(), at(MON, 10, 5))
    # The township merges the kiosk's stamp: clamped, and the skew goes into `received`.
    t.set_time(at(TUE))
    merge = t.clock.receive(h.events[-1].stamp)
    assert merge.clamped and merge.skew_ms > 364 * DAY_MS
    rec = received(at(TUE), sender=KIOSK.key, skew=merge.skew_ms)
    h.add(t, rec, at(TUE))
    h.add(t, Accepted(), at(WED))
    state = h.fold(today=WED)
    assert state.status is CaseStatus.ACCEPTED
    assert [e.kind for e in state.timeline] == ["submitted", "received", "accepted"]
    assert state.skewed_clocks == (KIOSK.key,)
    assert state.received_on == TUE and state.accepted_on == WED  # township dates, not kiosk's
    assert state.due is not None and state.due.day == date(2026, 12, 23)
    # The township's clock was not dragged a year forward by it.
    assert t.clock.last.wall_ms <= ms(at(WED)) + DAY_MS


# --- order independence -----------------------------------------------------------------------

# (weight, payload for a date): the ordinary steps often, the ones that end a case rarely.
_POOL = [
    (4, lambda d: Received(receiver=TOWNSHIP, received_at=at(d))),
    (4, lambda d: Accepted()),
    (2, lambda d: Returned(missing=(MissingMaterial(name="户口簿", key="hukou"),))),
    (2, lambda d: Resubmitted(provided=("hukou",))),
    (2, lambda d: Assigned(staff="s1")),
    (2, lambda d: Suspended(reason=SuspendReason.TESTING)),
    (2, lambda d: Resumed()),
    (1, lambda d: Completed(result="结", delivery=Delivery.WINDOW)),
    (1, lambda d: Refused(reason="不符")),
    (1, lambda d: Withdrawn()),
    (2, lambda d: CommitmentFulfilled(keys=("bank_card",))),
    (1, lambda d: Rated(level=2, channel=RatingChannel.PHONE)),
    (1, lambda d: FollowUp(step=FollowUpStep.CLOSED)),
    (1, lambda d: VisitRequested(visit_id="v1", day=d, period="am")),
    (1, lambda d: VisitScheduled(visit_id="v1", day=d, period="pm", staff="s1")),
    (1, lambda d: VisitRecorded(visit_id="v1", outcome=VisitOutcome.DONE)),
    (1, lambda d: VideoRequested(call_id="c1")),
    (1, lambda d: VideoStarted(call_id="c1", staff="s1")),
    (1, lambda d: VideoEnded(call_id="c1", duration_s=30, outcome=VideoOutcome.SERVED)),
]


def random_history(seed: int) -> History:
    """Three writers (a kiosk, its re-enrolled replacement, the township) act concurrently.

    Each writer has seen all but the last few events (replication lag); the first kiosk's clock
    may be a year fast or an hour slow.
    """
    rng = random.Random(seed)
    writers = [
        Writer(KIOSK, "agent01", skew_ms=rng.choice([0, 365 * DAY_MS, -3_600_000])),
        Writer(NEW_PC, "agent02"),
        Writer(TOWN, "staff01"),
    ]
    h = History(writers[0], at(MON))
    h.add(writers[0], Submitted(), at(MON, 10, 1))
    moment = at(MON, 10, 1)
    weights = [w for w, _ in _POOL]
    for _ in range(rng.randrange(5, 30)):
        moment += timedelta(minutes=rng.randrange(1, 2000))
        writer = rng.choice(writers)
        n = len(h.events)
        saw = h.events[: rng.randrange(max(1, n - 3), n + 1)]
        payload = rng.choices([make for _, make in _POOL], weights)[0](moment.date())
        if rng.random() < 0.1:
            payload = ConflictResolved(event_ids=(rng.choice(h.events).id,), note="处理")
        h.add(writer, payload, moment, saw=saw)
    return h


@pytest.mark.parametrize("seed", range(40))
def test_fold_does_not_depend_on_arrival_order(seed: int) -> None:
    """Hypothesis is not installed in .venv: fixed seeds, shuffled and duplicated arrivals."""
    h = random_history(seed)
    case_doc, docs = case_to_doc(h.case), h.docs()
    today = date(2026, 12, 31)
    expected = fold(case_doc, docs, CAL, today)
    rng = random.Random(seed)
    for _ in range(10):
        shuffled = docs + rng.sample(docs, rng.randrange(0, 3))  # replication may repeat some
        rng.shuffle(shuffled)
        assert fold(case_doc, shuffled, CAL, today) == expected
    # Nothing is dropped: every event is in the timeline, applied or in conflict.
    assert sorted(e.event_id for e in expected.timeline) == sorted(e.id for e in h.events)
    listed = {c.event_id for c in expected.conflicts + expected.resolved_conflicts}
    conflicted = {e.event_id for e in expected.timeline if e.effect is Effect.CONFLICT}
    assert conflicted == listed
    # The state survives storage in a read model.
    assert msgspec.json.decode(msgspec.json.encode(expected), type=CaseState) == expected


def test_the_same_documents_as_structs_or_dicts_fold_alike() -> None:
    h = random_history(99)
    assert fold(h.case, h.events, CAL) == h.fold()
