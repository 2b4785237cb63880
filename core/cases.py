"""Case documents: one immutable ``case`` at its origin, immutable ``case_event`` documents after.

Identity. Every writer of case documents is an *origin*: a unit code plus an *instance* id
minted when that writer is set up — for a kiosk, at each enrolment (so a replaced or re-imaged
PC, or the same PC enrolled again, is a new instance), for a server node, once per writing
process. An origin numbers every document it writes, cases and events alike, with one counter
(1, 2, 3 …). Ids are built from (unit, instance, counter):

* ``case:<unit>:<instance>:<counter>``, e.g. ``case:500109102001:k7f3a9:00000012``
* ``case_event:<unit>:<instance>:<counter of the case>:<unit>:<instance>:<counter>`` — the case's
  key, then the writer's origin and counter, so one ``_all_docs`` range lists a case's events.

Two kiosks differ in unit or instance; a replaced kiosk differs in instance, so its counter may
start again at 1 without ever meeting the old PC's ids — even if the old PC is switched on again
with documents it never synced. The instance is random (30 bits) and the enrolling township can
redraw it if the village already had one like it, so uniqueness rests on that enrolment step, not
on any clock. The case number printed for citizens is the same triple plus the writer's date,
``<unit>-<yyyymmdd>-<INSTANCE>-<counter>``, hence unique too, and the case id can be read
back from it without an index.

Documents carry schema_version, the owning village and township, origin, author, wall time (ISO
8601 with offset), the counter and an HLC stamp (core.clock). Parsing checks the structure and
that ids, numbers and stamps agree; ``validate_case`` checks the content rules at intake.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from core.catalogue import CaseType, CatalogueItem, Eligibility, HandlingLevel, Kind, Mode
from core.clock import Hlc
from core.errors import FieldError, InvalidInput
from core.hierarchy import Level, level_of, township_of
from core.identity import validate_credit_code, validate_resident_id

__all__ = [
    "SCHEMA_VERSION",
    "CHINA_TIME",
    "local_date",
    "Origin",
    "new_instance_id",
    "case_id",
    "parse_case_id",
    "event_id",
    "parse_event_id",
    "event_id_range",
    "case_number",
    "case_id_from_number",
    "Person",
    "Organisation",
    "Representative",
    "Applicant",
    "MaterialStatus",
    "MaterialState",
    "Case",
    "EventKind",
    "Delivery",
    "Recipient",
    "SuspendReason",
    "VisitOutcome",
    "RatingChannel",
    "FollowUpStep",
    "RATING_LABELS",
    "is_bad_rating",
    "Payload",
    "Submitted",
    "Received",
    "Accepted",
    "MissingMaterial",
    "Returned",
    "Resubmitted",
    "MaterialsReceived",
    "CommitmentFulfilled",
    "Assigned",
    "Escalated",
    "Transferred",
    "Suspended",
    "Resumed",
    "VisitRequested",
    "VisitScheduled",
    "VisitCancelled",
    "VisitRecorded",
    "VideoOutcome",
    "VideoRequested",
    "VideoStarted",
    "VideoEnded",
    "Completed",
    "Refused",
    "Withdrawn",
    "Delivered",
    "Rated",
    "FollowUp",
    "ConflictResolved",
    "EventPayload",
    "CaseEvent",
    "new_case",
    "new_event",
    "validate_case",
    "case_to_doc",
    "case_from_doc",
    "event_to_doc",
    "event_from_doc",
    "parse_doc",
]

SCHEMA_VERSION = 1
"""The document schema this code writes; it reads this version and older."""

CHINA_TIME = timezone(timedelta(hours=8), "CST")
"""China Standard Time (no daylight saving since 1991): the zone every date is counted in."""

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Text = Annotated[str, msgspec.Meta(max_length=2000)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Counter = Annotated[int, msgspec.Meta(ge=1)]
Level5 = Annotated[int, msgspec.Meta(ge=1, le=5)]

_UNIT = re.compile(r"^[0-9]{12}$")
_INSTANCE = re.compile(r"^[0-9a-z]{4,16}$")
_INSTANCE_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford: no i, l, o, u
_COUNTER = re.compile(r"^[0-9]{8,}$")
_NUMBER = re.compile(r"^([0-9]{12})-([0-9]{8})-([0-9A-Za-z]{4,16})-([0-9]{4,})$")
_KEY = re.compile(r"^[a-z0-9_]{1,40}$")
_TOKEN = re.compile(r"^[\w.:-]{1,80}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{5,22}[0-9]$")


def local_date(moment: datetime) -> date:
    """The calendar date of an aware datetime in China Standard Time."""
    return moment.astimezone(CHINA_TIME).date()


def _is_unit(code: str) -> bool:
    if not _UNIT.match(code):
        return False
    try:
        level_of(code)
    except InvalidInput:
        return False
    return True


# --- identity -------------------------------------------------------------------------------


class Origin(msgspec.Struct, frozen=True):
    """Who writes a document: a unit code and the writer's instance id (one per enrolment)."""

    unit: str
    instance: str

    def __post_init__(self) -> None:
        if not _is_unit(self.unit):
            raise ValueError(f"origin unit is not a 12-digit division code: {self.unit!r}")
        if not _INSTANCE.match(self.instance):
            raise ValueError(f"origin instance must be 4-16 of [0-9a-z]: {self.instance!r}")

    @property
    def key(self) -> str:
        """``<unit>:<instance>``: the origin as one string, also the HLC node id."""
        return f"{self.unit}:{self.instance}"


def new_instance_id(length: int = 8) -> str:
    """A fresh random instance id (Crockford letters, lower case), minted at each enrolment."""
    return "".join(secrets.choice(_INSTANCE_ALPHABET) for _ in range(length))


def _counter_text(counter: int) -> str:
    if counter < 1:
        raise ValueError(f"counter must be at least 1: {counter}")
    return f"{counter:08d}"


def _parse_counter(text: str) -> int:
    if not _COUNTER.match(text) or _counter_text(int(text)) != text:
        raise ValueError(f"not a canonical counter: {text!r}")
    return int(text)


def case_id(origin: Origin, counter: int) -> str:
    """The id of the case an origin writes as its ``counter``-th document."""
    return f"case:{origin.unit}:{origin.instance}:{_counter_text(counter)}"


def parse_case_id(text: str) -> tuple[Origin, int]:
    """The origin and counter of a case id; raise ValueError if it is not one."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 4 or parts[0] != "case":
        raise ValueError(f"not a case id: {text!r}")
    return Origin(parts[1], parts[2]), _parse_counter(parts[3])


def event_id(of_case: str, origin: Origin, counter: int) -> str:
    """The id of an event on case ``of_case`` that ``origin`` writes as its ``counter``-th."""
    parse_case_id(of_case)
    return f"case_event:{of_case[5:]}:{origin.unit}:{origin.instance}:{_counter_text(counter)}"


def parse_event_id(text: str) -> tuple[str, Origin, int]:
    """The case id, writer origin and counter of an event id; raise ValueError if not one."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 7 or parts[0] != "case_event":
        raise ValueError(f"not a case event id: {text!r}")
    of_case = "case:" + ":".join(parts[1:4])
    parse_case_id(of_case)
    return of_case, Origin(parts[4], parts[5]), _parse_counter(parts[6])


def event_id_range(of_case: str) -> tuple[str, str]:
    """``startkey`` and ``endkey`` for ``_all_docs``: every event of one case."""
    parse_case_id(of_case)
    prefix = f"case_event:{of_case[5:]}:"
    return prefix, prefix + "\ufff0"


def case_number(origin: Origin, counter: int, day: date) -> str:
    """The case number shown to citizens, e.g. ``500109102001-20261130-K7F3A9-0012``."""
    if counter < 1:
        raise ValueError(f"counter must be at least 1: {counter}")
    return f"{origin.unit}-{day:%Y%m%d}-{origin.instance.upper()}-{counter:04d}"


def case_id_from_number(number: str) -> str:
    """The case id a case number stands for (any letter case); raise InvalidInput if none."""
    match = _NUMBER.match(number.strip()) if isinstance(number, str) else None
    try:
        if match is None:
            raise ValueError(number)
        datetime.strptime(match[2], "%Y%m%d")
        return case_id(Origin(match[1], match[3].lower()), int(match[4]))
    except ValueError:
        raise InvalidInput(
            FieldError("case_number", "办件编号格式不正确", "Not a valid case number")
        ) from None


# --- applicant ------------------------------------------------------------------------------


class Person(msgspec.Struct, frozen=True, kw_only=True, tag="person", tag_field="kind"):
    """An applicant who is a natural person."""

    name: Short
    id_number: Short
    phone: Short = ""
    address: Text = ""
    flags: tuple[Eligibility, ...] = ()
    flag_note: Text = ""


class Organisation(msgspec.Struct, frozen=True, kw_only=True, tag="organisation", tag_field="kind"):
    """An applicant that is an enterprise or other organisation."""

    name: Short
    credit_code: Short
    contact_name: Short = ""
    contact_phone: Short = ""
    address: Text = ""


class Representative(msgspec.Struct, frozen=True, kw_only=True):
    """Someone acting for the applicant (委托代理人, a family member)."""

    name: Short
    id_number: Short
    phone: Short = ""
    relation: Short = ""


Applicant = Person | Organisation


# --- materials ------------------------------------------------------------------------------


class MaterialStatus(StrEnum):
    """Where one material of the checklist stands."""

    PROVIDED = "provided"
    MISSING = "missing"
    TO_FOLLOW = "to_follow"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"provided": "已提供", "missing": "缺少", "to_follow": "承诺后补"}[self.value]


class MaterialState(msgspec.Struct, frozen=True, kw_only=True):
    """One checklist line of a case: the item's material and its state at intake."""

    key: str
    name: Short
    status: MaterialStatus
    required: bool = True
    deadline: date | None = None
    attachments: tuple[str, ...] = ()
    note: Text = ""

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError(f"bad material key: {self.key!r}")
        if (self.status is MaterialStatus.TO_FOLLOW) != (self.deadline is not None):
            raise ValueError(f"material {self.key}: a deadline goes with to_follow, and only there")


# --- the case document -----------------------------------------------------------------------


class _Written(msgspec.Struct, frozen=True, kw_only=True):
    """Fields every case and case event carries."""

    id: str = msgspec.field(name="_id")
    schema_version: int = SCHEMA_VERSION
    village: str | None
    township: str
    origin: Origin
    author: Short
    wall_time: AwareDatetime
    counter: Counter
    hlc: str

    @property
    def stamp(self) -> Hlc:
        """The HLC stamp, parsed."""
        return Hlc.parse(self.hlc)

    def _check_written(self) -> None:
        if self.schema_version < 1:
            raise ValueError("schema_version must be at least 1")
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is newer than this software")
        if not _is_unit(self.township) or level_of(self.township) is Level.VILLAGE:
            raise ValueError(f"township must be a township or district code: {self.township!r}")
        if self.village is not None and (
            not _is_unit(self.village)
            or level_of(self.village) is not Level.VILLAGE
            or township_of(self.village) != self.township
        ):
            raise ValueError(f"village {self.village!r} is not a village of {self.township}")
        if self.stamp.node != self.origin.key:
            raise ValueError(f"hlc node {self.stamp.node!r} is not the origin {self.origin.key!r}")


class Case(_Written, frozen=True, kw_only=True):
    """The ``case`` document: written once at the origin, never edited."""

    type: Literal["case"] = "case"
    case_number: str
    item_code: Short
    item_name: Short
    item_kind: Kind
    catalogue_version: Annotated[int, msgspec.Meta(ge=1)]
    case_type: CaseType
    promised_limit_days: Annotated[int, msgspec.Meta(ge=0)]
    handling_level: HandlingLevel
    handling_unit: str
    applicant: Applicant
    representative: Representative | None = None
    mode: Mode
    mode_reason: Text = ""
    materials: tuple[MaterialState, ...] = ()
    linked_case: str | None = None
    note: Text = ""

    def __post_init__(self) -> None:
        self._check_written()
        if self.id != case_id(self.origin, self.counter):
            raise ValueError(f"case id {self.id!r} does not match its origin and counter")
        expected = case_number(self.origin, self.counter, local_date(self.wall_time))
        if self.case_number != expected:
            raise ValueError(f"case number {self.case_number!r} should be {expected!r}")
        if not _is_unit(self.handling_unit):
            raise ValueError(f"handling unit is not a division code: {self.handling_unit!r}")
        if self.linked_case is not None:
            parse_case_id(self.linked_case)
        keys = [m.key for m in self.materials]
        if len(set(keys)) != len(keys):
            raise ValueError("a material is listed twice")

    def material(self, key: str) -> MaterialState | None:
        """The checklist line for ``key``, if the case has one."""
        return next((m for m in self.materials if m.key == key), None)


# --- events ---------------------------------------------------------------------------------


class EventKind(StrEnum):
    """What a case event records."""

    SUBMITTED = "submitted"
    RECEIVED = "received"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    RESUBMITTED = "resubmitted"
    MATERIALS_RECEIVED = "materials_received"
    COMMITMENT_FULFILLED = "commitment_fulfilled"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    TRANSFERRED = "transferred"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    VISIT_REQUESTED = "visit_requested"
    VISIT_SCHEDULED = "visit_scheduled"
    VISIT_CANCELLED = "visit_cancelled"
    VISIT_RECORDED = "visit_recorded"
    VIDEO_REQUESTED = "video_requested"
    VIDEO_STARTED = "video_started"
    VIDEO_ENDED = "video_ended"
    COMPLETED = "completed"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    DELIVERED = "delivered"
    RATED = "rated"
    FOLLOW_UP = "follow_up"
    CONFLICT_RESOLVED = "conflict_resolved"

    @property
    def label(self) -> str:
        """Chinese name."""
        return _KIND_LABELS[self.value]


_KIND_LABELS = {
    "submitted": "提交",
    "received": "接收",
    "accepted": "受理",
    "returned": "退回补正（一次性告知）",
    "resubmitted": "补正后重新提交",
    "materials_received": "收到材料",
    "commitment_fulfilled": "承诺材料已补交",
    "assigned": "分派",
    "escalated": "上报区级办理",
    "transferred": "移交其他镇街",
    "suspended": "中止计时",
    "resumed": "恢复计时",
    "visit_requested": "申请上门",
    "visit_scheduled": "安排上门",
    "visit_cancelled": "取消上门",
    "visit_recorded": "记录上门结果",
    "video_requested": "呼叫视频办",
    "video_started": "视频接通",
    "video_ended": "视频结束",
    "completed": "办结",
    "refused": "不予受理（办理）",
    "withdrawn": "撤回",
    "delivered": "结果送达",
    "rated": "评价",
    "follow_up": "差评回访整改",
    "conflict_resolved": "处理冲突",
}


class Delivery(StrEnum):
    """How a result reaches the citizen."""

    WINDOW = "window"
    VILLAGE_AGENT = "village_agent"
    AT_HOME = "at_home"
    ONLINE = "online"
    MAIL = "mail"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "window": "窗口领取",
            "village_agent": "村代办员转交",
            "at_home": "上门送达",
            "online": "网上送达",
            "mail": "邮寄送达",
        }[self.value]


class Recipient(StrEnum):
    """Who a result was handed to."""

    AGENT = "agent"
    CITIZEN = "citizen"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"agent": "村代办员", "citizen": "办事群众"}[self.value]


class SuspendReason(StrEnum):
    """Periods the law leaves out of the time limit (行政许可法 Art. 45)."""

    INSPECTION = "inspection"
    TESTING = "testing"
    EXPERT_REVIEW = "expert_review"
    HEARING = "hearing"
    OTHER = "other"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "inspection": "现场核查",
            "testing": "检验检测",
            "expert_review": "专家评审",
            "hearing": "听证",
            "other": "其他法定情形",
        }[self.value]


class VisitOutcome(StrEnum):
    """What a home visit came to."""

    DONE = "done"
    ABSENT = "absent"
    MORE_MATERIALS = "more_materials"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"done": "已完成", "absent": "群众不在家", "more_materials": "需补充材料"}[
            self.value
        ]


class VideoOutcome(StrEnum):
    """What a video session came to."""

    SERVED = "served"
    FOLLOW_UP_AGENCY = "follow_up_agency"
    FOLLOW_UP_VISIT = "follow_up_visit"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "served": "已办理",
            "follow_up_agency": "需帮代办跟进",
            "follow_up_visit": "需上门跟进",
            "failed": "未能完成",
        }[self.value]


class RatingChannel(StrEnum):
    """Where a rating was given."""

    KIOSK = "kiosk"
    TOWNSHIP = "township"
    PHONE = "phone"
    ONLINE = "online"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"kiosk": "村便民服务点", "township": "镇街窗口", "phone": "电话", "online": "网上"}[
            self.value
        ]


class FollowUpStep(StrEnum):
    """Steps of the follow-up of a 差评."""

    CALL_BACK = "call_back"
    FIX = "fix"
    RE_RATED = "re_rated"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {"call_back": "回访", "fix": "整改", "re_rated": "再次评价", "closed": "办结回访"}[
            self.value
        ]


RATING_LABELS: dict[int, str] = {
    5: "非常满意",
    4: "满意",
    3: "基本满意",
    2: "不满意",
    1: "非常不满意",
}
"""The five levels of 好差评."""


FOLLOW_UP_WORKING_DAYS = 10
"""Working days from a 差评 to the end of its follow-up, unless staff set another deadline at
the first step: the n-th working day of the district calendar after the day of the rating.
DOMAIN.md ("Rating") says local rules fix 5–15 working days (⚠ not checked against a source);
10 is the middle of that range: our default, not law (not yet a district setting)."""


def is_bad_rating(level: int) -> bool:
    """True for 差评 (不满意 and 非常不满意), which must be followed up."""
    return level <= 2


class Payload(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """What one kind of event says; the ``kind`` tag names it in JSON."""

    @property
    def kind(self) -> EventKind:
        """The event kind."""
        return EventKind(str(self.__struct_config__.tag))


class Submitted(Payload, frozen=True, tag="submitted"):
    """The origin sends the case on to be handled (a draft becomes a case)."""

    note: Text = ""


class Received(Payload, frozen=True, tag="received"):
    """The handling unit got the case: its own time and how far the sender's clock was off.

    ``sender`` is the origin key whose stamp was measured; ``skew_clamped`` flags a clock more
    than a day ahead (core.clock.Merge gives both).
    """

    receiver: str
    received_at: AwareDatetime
    sender: str = ""
    sender_skew_ms: int = 0
    skew_clamped: bool = False


class Accepted(Payload, frozen=True, tag="accepted"):
    """受理: the SLA clock starts on this event's date."""

    notice_no: Short = ""
    note: Text = ""


class MissingMaterial(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a one-time notice; ``key`` names a checklist material, if it is one."""

    name: Short
    key: str | None = None
    note: Text = ""


class Returned(Payload, frozen=True, tag="returned"):
    """退回补正 with the one-time notice: every missing material at once; the clock stops."""

    missing: Annotated[tuple[MissingMaterial, ...], msgspec.Meta(min_length=1)]
    reason: Text = ""
    notice_no: Short = ""


class Resubmitted(Payload, frozen=True, tag="resubmitted"):
    """The applicant brings what the notice asked for; acceptance starts afresh."""

    provided: tuple[str, ...] = ()
    note: Text = ""


class MaterialsReceived(Payload, frozen=True, tag="materials_received"):
    """Materials handed over (e.g. by the village agent)."""

    keys: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]
    from_person: Short = ""
    note: Text = ""


class CommitmentFulfilled(Payload, frozen=True, tag="commitment_fulfilled"):
    """Materials promised under 告知承诺 have arrived."""

    keys: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]
    note: Text = ""


class Assigned(Payload, frozen=True, tag="assigned"):
    """The case is given to a staff member (again, to reassign)."""

    staff: Short
    staff_name: Short = ""
    note: Text = ""


class Escalated(Payload, frozen=True, tag="escalated"):
    """The case goes up to another unit (the district's service centre) to be handled."""

    to_unit: str
    reason: Text = ""


class Transferred(Payload, frozen=True, tag="transferred"):
    """The case was sent to the wrong township: ends here, continues as ``new_case_id``."""

    to_township: str
    new_case_id: str
    reason: Text = ""


class Suspended(Payload, frozen=True, tag="suspended"):
    """The time limit pauses for a period the law excludes."""

    reason: SuspendReason
    note: Text = ""


class Resumed(Payload, frozen=True, tag="resumed"):
    """The time limit runs again."""

    note: Text = ""


class VisitRequested(Payload, frozen=True, tag="visit_requested"):
    """A home visit is asked for a period, awaiting the township's confirmation."""

    visit_id: str
    day: date
    period: Short
    note: Text = ""


class VisitScheduled(Payload, frozen=True, tag="visit_scheduled"):
    """A home visit is booked on the township's calendar (or moved)."""

    visit_id: str
    day: date
    period: Short
    staff: Short
    staff_name: Short = ""
    note: Text = ""


class VisitCancelled(Payload, frozen=True, tag="visit_cancelled"):
    """A home visit will not take place."""

    visit_id: str
    reason: Text = ""


class VisitRecorded(Payload, frozen=True, tag="visit_recorded"):
    """What happened at a home visit."""

    visit_id: str
    outcome: VisitOutcome
    note: Text = ""


class VideoRequested(Payload, frozen=True, tag="video_requested"):
    """The village agent calls the township for a video session on the case (视频办)."""

    call_id: Short
    note: Text = ""


class VideoStarted(Payload, frozen=True, tag="video_started"):
    """A staff member accepted the call; the session is on. No media is recorded."""

    call_id: Short
    staff: Short
    staff_name: Short = ""


class VideoEnded(Payload, frozen=True, tag="video_ended"):
    """The session is over: how long it lasted (seconds) and what it came to."""

    call_id: Short
    duration_s: Annotated[int, msgspec.Meta(ge=0)]
    outcome: VideoOutcome
    note: Text = ""


class Completed(Payload, frozen=True, tag="completed"):
    """办结: the result and how it reaches the citizen."""

    result: Text
    delivery: Delivery
    note: Text = ""


class Refused(Payload, frozen=True, tag="refused"):
    """不予受理 or 不予许可, with the reason the notice gives."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class Withdrawn(Payload, frozen=True, tag="withdrawn"):
    """The applicant withdraws the case (or cancels the booking it came from)."""

    reason: Text = ""


class Delivered(Payload, frozen=True, tag="delivered"):
    """The result was handed over, to the village agent or to the citizen."""

    to: Recipient
    via: Delivery
    person: Short = ""
    note: Text = ""


class Rated(Payload, frozen=True, tag="rated"):
    """好差评: one rating, of the case or of one visit."""

    level: Level5
    channel: RatingChannel
    tags: tuple[Short, ...] = ()
    text: Text = ""
    anonymous: bool = False
    visit_id: str | None = None


class FollowUp(Payload, frozen=True, tag="follow_up"):
    """One step of following up a 差评; the first usually sets the deadline."""

    step: FollowUpStep
    note: Text = ""
    deadline: date | None = None
    level: Level5 | None = None


class ConflictResolved(Payload, frozen=True, tag="conflict_resolved"):
    """Staff have dealt with conflicting events; their note says how."""

    event_ids: Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


EventPayload = (
    Submitted
    | Received
    | Accepted
    | Returned
    | Resubmitted
    | MaterialsReceived
    | CommitmentFulfilled
    | Assigned
    | Escalated
    | Transferred
    | Suspended
    | Resumed
    | VisitRequested
    | VisitScheduled
    | VisitCancelled
    | VisitRecorded
    | VideoRequested
    | VideoStarted
    | VideoEnded
    | Completed
    | Refused
    | Withdrawn
    | Delivered
    | Rated
    | FollowUp
    | ConflictResolved
)


class CaseEvent(_Written, frozen=True, kw_only=True):
    """A ``case_event`` document: one thing that happened to a case, written once."""

    type: Literal["case_event"] = "case_event"
    case_id: str
    payload: EventPayload

    def __post_init__(self) -> None:
        self._check_written()
        if self.id != event_id(self.case_id, self.origin, self.counter):
            raise ValueError(f"event id {self.id!r} does not match its case, origin and counter")

    @property
    def kind(self) -> EventKind:
        """The event kind (its payload's tag)."""
        return self.payload.kind


# --- writing --------------------------------------------------------------------------------


def new_case(
    *,
    origin: Origin,
    counter: int,
    hlc: Hlc,
    wall_time: datetime,
    author: str,
    village: str | None,
    township: str,
    item: CatalogueItem,
    catalogue_version: int,
    applicant: Applicant,
    mode: Mode,
    handling_unit: str,
    materials: tuple[MaterialState, ...] = (),
    representative: Representative | None = None,
    mode_reason: str = "",
    linked_case: str | None = None,
    note: str = "",
) -> Case:
    """A new case document from intake; copies the item version's limit; raises InvalidInput."""
    try:
        case = Case(
            id=case_id(origin, counter),
            village=village,
            township=township,
            origin=origin,
            author=author,
            wall_time=wall_time,
            counter=counter,
            hlc=hlc.encode(),
            case_number=case_number(origin, counter, local_date(wall_time)),
            item_code=item.code,
            item_name=item.name,
            item_kind=item.kind,
            catalogue_version=catalogue_version,
            case_type=item.case_type,
            promised_limit_days=item.promised_limit_days,
            handling_level=item.handling_level,
            handling_unit=handling_unit,
            applicant=applicant,
            representative=representative,
            mode=mode,
            mode_reason=mode_reason,
            materials=materials,
            linked_case=linked_case,
            note=note,
        )
        # Constructors do not run msgspec's type checks: a round trip applies them.
        case = msgspec.convert(msgspec.to_builtins(case), Case)
    except (ValueError, TypeError, msgspec.ValidationError) as exc:
        raise InvalidInput(FieldError("case", f"办件信息有误：{exc}", str(exc))) from exc
    return validate_case(case, item)


def validate_case(case: Case, item: CatalogueItem | None = None) -> Case:
    """Check a case's content rules (ID checksums, phones, checklist), normalised, or raise.

    With ``item``, the checklist is also checked against the item's materials.
    """
    errors: list[FieldError] = []
    today = local_date(case.wall_time)

    def bad(field: str, message: str, message_en: str) -> None:
        errors.append(FieldError(field, message, message_en))

    def resident_id(field: str, value: str) -> str:
        try:
            return validate_resident_id(value, today)
        except InvalidInput as exc:
            errors.extend(FieldError(field, e.message, e.message_en) for e in exc.errors)
            return value

    def phone_ok(field: str, value: str) -> None:
        if value and (not _PHONE.match(value) or sum(c.isdigit() for c in value) < 7):
            bad(field, "电话号码格式不正确", "Not a valid phone number")

    applicant = case.applicant
    phones: list[str] = []
    if isinstance(applicant, Person):
        if not applicant.name.strip():
            bad("applicant.name", "请填写申请人姓名", "The applicant's name is required")
        number = resident_id("applicant.id_number", applicant.id_number)
        phone_ok("applicant.phone", applicant.phone)
        phones.append(applicant.phone)
        applicant = msgspec.structs.replace(
            applicant, name=applicant.name.strip(), id_number=number
        )
    else:
        if not applicant.name.strip():
            bad("applicant.name", "请填写单位名称", "The organisation's name is required")
        try:
            code = validate_credit_code(applicant.credit_code)
        except InvalidInput as exc:
            errors.extend(
                FieldError("applicant.credit_code", e.message, e.message_en) for e in exc.errors
            )
            code = applicant.credit_code
        phone_ok("applicant.contact_phone", applicant.contact_phone)
        phones.append(applicant.contact_phone)
        applicant = msgspec.structs.replace(
            applicant, name=applicant.name.strip(), credit_code=code
        )
    representative = case.representative
    if representative is not None:
        if not representative.name.strip():
            bad("representative.name", "请填写代理人姓名", "The representative's name is required")
        number = resident_id("representative.id_number", representative.id_number)
        phone_ok("representative.phone", representative.phone)
        phones.append(representative.phone)
        representative = msgspec.structs.replace(
            representative, name=representative.name.strip(), id_number=number
        )
    if not any(phones):
        bad(
            "applicant.phone",
            "请至少留一个联系电话（申请人或代理人）",
            "A phone number of the applicant or representative is required",
        )
    known = {m.key: m for m in item.materials} if item is not None else None
    for i, m in enumerate(case.materials):
        where = f"materials[{i}]"
        if m.deadline is not None and m.deadline <= today:
            bad(f"{where}.deadline", f"“{m.name}”的补交期限应晚于今天", "Deadline must be later")
        if known is None:
            continue
        spec = known.get(m.key)
        if spec is None:
            bad(f"{where}.key", f"“{m.name}”不在该事项的材料清单中", "Not a material of this item")
        elif m.status is MaterialStatus.TO_FOLLOW and not spec.may_follow:
            bad(f"{where}.status", f"“{m.name}”不允许承诺后补", "This material may not follow")
    if errors:
        raise InvalidInput(errors)
    return msgspec.structs.replace(case, applicant=applicant, representative=representative)


def new_event(
    case: Case,
    payload: EventPayload,
    *,
    origin: Origin,
    counter: int,
    hlc: Hlc,
    wall_time: datetime,
    author: str,
) -> CaseEvent:
    """A new event on ``case``, owned by the case's village and township; raises InvalidInput.

    Pass ``hlc = clock.tick(after=state.last_stamp)`` so the event sorts after what its writer saw.
    """
    errors: list[FieldError] = []
    keys: tuple[str, ...] = ()
    if isinstance(payload, MaterialsReceived | CommitmentFulfilled):
        keys = payload.keys
    elif isinstance(payload, Resubmitted):
        keys = payload.provided
    elif isinstance(payload, Returned):
        keys = tuple(m.key for m in payload.missing if m.key is not None)
    for key in keys:
        if case.material(key) is None:
            errors.append(
                FieldError("payload", f"材料“{key}”不在本件的材料清单中", f"Unknown material {key}")
            )
    if isinstance(payload, Transferred) and payload.to_township == case.township:
        errors.append(FieldError("to_township", "不能移交给本镇街", "Cannot transfer to itself"))
    if errors:
        raise InvalidInput(errors)
    try:
        event = CaseEvent(
            id=event_id(case.id, origin, counter),
            case_id=case.id,
            village=case.village,
            township=case.township,
            origin=origin,
            author=author,
            wall_time=wall_time,
            counter=counter,
            hlc=hlc.encode(),
            payload=payload,
        )
        return msgspec.convert(msgspec.to_builtins(event), CaseEvent)
    except (ValueError, TypeError, msgspec.ValidationError) as exc:
        raise InvalidInput(FieldError("event", f"办件事件有误：{exc}", str(exc))) from exc


# --- CouchDB JSON ---------------------------------------------------------------------------


_T = TypeVar("_T")


def _to_json_dict(value: msgspec.Struct) -> dict[str, Any]:
    # Through JSON so the dict holds only JSON types (lists, not tuples), as CouchDB returns it.
    result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(value))
    return result


def case_to_doc(case: Case) -> dict[str, Any]:
    """The CouchDB document of a case."""
    return _to_json_dict(case)


def event_to_doc(event: CaseEvent) -> dict[str, Any]:
    """The CouchDB document of an event; ``kind`` is repeated at the top for views and filters."""
    doc = _to_json_dict(event)
    doc["kind"] = event.kind.value
    return doc


def _parse(doc: Mapping[str, Any], cls: type[_T], what: str) -> _T:
    try:
        return msgspec.convert(doc, cls)
    except msgspec.ValidationError as exc:
        raise InvalidInput(
            FieldError(what, f"{doc.get('_id', '?')} 文档格式有误：{exc}", f"Invalid {what}: {exc}")
        ) from exc


def case_from_doc(doc: Mapping[str, Any]) -> Case:
    """Read a case document (CouchDB's ``_rev`` and other extras are ignored)."""
    return _parse(doc, Case, "case")


def event_from_doc(doc: Mapping[str, Any]) -> CaseEvent:
    """Read a case event document; the top-level ``kind`` must agree with the payload."""
    event = _parse(doc, CaseEvent, "case_event")
    if doc.get("kind", event.kind.value) != event.kind.value:
        raise InvalidInput(
            FieldError(
                "case_event",
                f"{event.id} 文档的事件类型与内容不一致",
                f"{event.id}: kind does not match the payload",
            )
        )
    return event


def parse_doc(doc: Mapping[str, Any]) -> Case | CaseEvent | None:
    """A case or case event from any document; None for documents of other types."""
    kind = doc.get("type")
    if kind == "case":
        return case_from_doc(doc)
    if kind == "case_event":
        return event_from_doc(doc)
    return None
