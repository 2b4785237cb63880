"""Six weeks of case history for the demo district, so its supervision pages have something to
show on the first run.

About a hundred cases at 静观镇 and 天生街道 over the working days before ``today``: opened at
their villages' kiosks or at the township's counter, received, some returned once with a
one-time notice and resubmitted, accepted and assigned to the demo staff, most completed (some
late), some still open past their due date (red), some refused; rated (a few 差评, some of them
followed up); one case transferred from 静观镇 to 天生街道. The documents are the ones kiosks,
townships and the district write (``core.cases``), each writer with its own counter and clock,
stamped at the moment it acted; none is later than ``now``.

Deterministic for a given ``today`` (a seeded generator). ``write_history`` puts them into the
district's `district` database once (a second run finds the first case and writes nothing);
replication carries them down to the townships and villages like any case.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from core.calendar import WorkCalendar
from core.cases import (
    CHINA_TIME,
    Accepted,
    Assigned,
    Case,
    CaseEvent,
    Completed,
    Delivery,
    FollowUp,
    FollowUpStep,
    MissingMaterial,
    Origin,
    Person,
    Rated,
    RatingChannel,
    Received,
    Refused,
    Resubmitted,
    Returned,
    Submitted,
    Transferred,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CaseType, CatalogueItem, HandlingLevel, Mode
from core.clock import HlcClock
from core.identity import id_check_character
from core.intake import handling_unit

__all__ = ["INSTANCE", "history", "write_history"]

INSTANCE = "demohist"
"""The writer instance of every history document (no kiosk or node is enrolled under it)."""
DAYS = 42
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何罗高林"
GIVEN = ["秀英", "桂兰", "建国", "国强", "志明", "春梅", "德华", "玉珍", "永红", "海燕", "明", "丽",
         "军", "勇", "静", "伟", "芳", "强", "磊", "洋"]  # fmt: skip
RATING_WEIGHTS = {5: 55, 4: 25, 3: 10, 2: 6, 1: 4}


class _Writer:
    """One origin: its counter and hybrid logical clock, set to the moment it acts."""

    def __init__(self, unit: str) -> None:
        self.origin = Origin(unit, INSTANCE)
        self.counter = 0
        self.now_ms = 0
        self.clock = HlcClock(self.origin.key, lambda: self.now_ms)

    def stamp(self, moment: datetime) -> tuple[int, Any]:
        self.counter += 1
        self.now_ms = int(moment.timestamp() * 1000)
        return self.counter, self.clock.tick()


class _Ref:
    """A case still to be written: its document is made when its moment comes."""

    case: Case


@dataclass(order=True)
class _Step:
    """One document to write at ``moment`` (``order`` keeps the schedule's order on ties)."""

    moment: datetime
    order: int
    make: Callable[[], dict[str, Any]] = field(compare=False)


class _History:
    """The schedule: what each writer does when; ``documents`` stamps it in time order, so
    every writer's hybrid logical clock agrees with the wall clock and events sort as they
    happened."""

    def __init__(self, today: date, now: datetime, items: Sequence[CatalogueItem]) -> None:
        self.today, self.now = today, now
        self.calendar = WorkCalendar()
        self.rng = random.Random(f"sanji-demo-{today.isoformat()}")
        self.items = [i for i in items if not i.retired]
        self.writers: dict[str, _Writer] = {}
        self.steps: list[_Step] = []

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), CHINA_TIME)

    def later(self, day: date, working_days: int) -> date:
        return self.calendar.add_working_days(day, working_days).day

    def person(self, township: str) -> Person:
        rng = self.rng
        birth = date(rng.randint(1938, 2001), rng.randint(1, 12), rng.randint(1, 28))
        body = f"{township[:6]}{birth:%Y%m%d}{rng.randint(0, 999):03d}"
        return Person(
            name=rng.choice(SURNAMES) + rng.choice(GIVEN),
            id_number=body + id_check_character(body),
            phone=f"139{rng.randint(0, 99_999_999):08d}",
        )

    def _schedule(self, moment: datetime, unit: str, make: Callable[..., dict[str, Any]]) -> None:
        def stamped() -> dict[str, Any]:
            writer = self.writers.setdefault(unit, _Writer(unit))
            counter, hlc = writer.stamp(moment)
            return make(writer.origin, counter, hlc)

        self.steps.append(_Step(moment, len(self.steps), stamped))

    def open(
        self, day: date, township: str, village: str | None, item: CatalogueItem, mode: Mode,
        linked: _Ref | None = None,
    ) -> tuple[_Ref, datetime]:  # fmt: skip
        moment = self.at(day, self.rng.randint(8, 15), self.rng.randint(0, 59))
        ref, applicant = _Ref(), self.person(township)

        def make(origin: Origin, counter: int, hlc: Any) -> dict[str, Any]:
            ref.case = new_case(
                origin=origin, counter=counter, hlc=hlc, wall_time=moment,
                author=f"demo.{INSTANCE}", village=village, township=township, item=item,
                catalogue_version=1, applicant=applicant, mode=mode,
                handling_unit=handling_unit(item, village, township),
                linked_case=linked.case.id if linked else None,
            )  # fmt: skip
            return case_to_doc(ref.case)

        self._schedule(moment, village or township, make)
        return ref, moment

    def act(self, ref: _Ref, unit: str, payload: Any, moment: datetime, author: str) -> bool:
        """Schedule an event at ``moment`` unless that is still to come; False if it is.
        ``payload`` may be a function making it when it is written."""
        if moment > self.now:
            return False

        def make(origin: Origin, counter: int, hlc: Any) -> dict[str, Any]:
            event: CaseEvent = new_event(
                ref.case, payload() if callable(payload) else payload, origin=origin,
                counter=counter, hlc=hlc, wall_time=moment, author=author,
            )  # fmt: skip
            return event_to_doc(event)

        self._schedule(moment, unit, make)
        return True

    def documents(self) -> list[dict[str, Any]]:
        return [step.make() for step in sorted(self.steps)]


def _staff(
    unit: str, staff: Mapping[str, Sequence[tuple[str, str]]], rng: random.Random
) -> tuple[str, str]:
    return rng.choice(staff.get(unit) or [(f"demo.{INSTANCE}", "演示人员")])


def _one_case(
    h: _History, day: date, township: str, villages: Sequence[str],
    staff: Mapping[str, Sequence[tuple[str, str]]],
) -> None:  # fmt: skip
    rng = h.rng
    item = rng.choice(h.items)
    at_counter = rng.random() < 0.25 and Mode.WINDOW in item.modes
    village = None if at_counter else rng.choice(villages)
    modes = [Mode.WINDOW] if at_counter else [m for m in item.modes if m is not Mode.WINDOW]
    if not modes:
        return
    case, moment = h.open(day, township, village, item, rng.choice(modes))
    origin = village or township
    unit = handling_unit(item, village, township)
    who, name = _staff(unit, staff, rng)
    if not h.act(case, origin, Submitted(), moment + timedelta(minutes=2), f"demo.{INSTANCE}"):
        return
    step = moment + timedelta(minutes=5)
    if unit != origin:
        step = moment + timedelta(hours=rng.choice((0, 1, 2)), minutes=20)
        if not h.act(case, unit, Received(receiver="node", received_at=step), step, "node"):
            return
    if item.case_type is CaseType.PROMISED and item.materials and rng.random() < 0.12:
        missing = MissingMaterial(name=item.materials[0].name, note="请补齐后再交")
        step += timedelta(hours=1)
        if not h.act(case, unit, Returned(missing=(missing,)), step, who):
            return
        step = h.at(h.later(step.date(), 1), 10)
        if not h.act(case, origin, Resubmitted(), step, "agent"):
            return
    if rng.random() < 0.03:
        h.act(case, unit, Refused(reason="不符合申请条件"), step + timedelta(hours=1), who)
        return
    accepted = step + timedelta(minutes=40)
    if not h.act(case, unit, Accepted(), accepted, who):
        return
    if unit in staff:  # a township's case goes to one of its staff
        assigned = Assigned(staff=who, staff_name=name)
        h.act(case, unit, assigned, accepted + timedelta(minutes=5), who)
    due = h.later(accepted.date(), item.promised_limit_days)
    if item.case_type is CaseType.IMMEDIATE:
        done_on: date | None = accepted.date()
    elif due < h.today:
        draw = rng.random()
        late = h.later(due, rng.randint(1, 3))
        done_on = None if draw < 0.06 else (late if draw < 0.18 and late < h.today else None)
        if draw >= 0.18:
            done_on = h.later(accepted.date(), rng.randint(0, item.promised_limit_days))
    else:
        done_on = h.later(accepted.date(), rng.randint(0, 3)) if rng.random() < 0.4 else None
    if done_on is None:
        return
    done = max(h.at(done_on, 16, rng.randint(0, 59)), accepted + timedelta(minutes=30))
    delivery = Delivery.WINDOW if village is None else Delivery.VILLAGE_AGENT
    if not h.act(case, unit, Completed(result="已办结", delivery=delivery), done, who):
        return
    if rng.random() < 0.6:
        level = rng.choices(list(RATING_WEIGHTS), weights=list(RATING_WEIGHTS.values()))[0]
        channel = RatingChannel.TOWNSHIP if village is None else RatingChannel.KIOSK
        rated = done + timedelta(hours=rng.randint(1, 20))
        if h.act(case, origin, Rated(level=level, channel=channel), rated, "agent") and level <= 2:
            if rng.random() < 0.5:
                steps = [FollowUpStep.CALL_BACK, FollowUpStep.FIX]
                if rng.random() < 0.5:
                    steps += [FollowUpStep.RE_RATED, FollowUpStep.CLOSED]
                for n, kind in enumerate(steps, start=1):
                    payload = FollowUp(
                        step=kind, level=4 if kind is FollowUpStep.RE_RATED else None
                    )
                    h.act(case, unit, payload, rated + timedelta(days=n), who)


def _transfer(h: _History, day: date, source: str, target: str, item: CatalogueItem) -> None:
    """A case opened at ``source``'s counter that belongs to ``target``: transferred there (the
    new case, linked to it, and the ``transferred`` event written together)."""
    case, moment = h.open(day, source, None, item, Mode.WINDOW)
    h.act(case, source, Submitted(), moment + timedelta(minutes=2), f"demo.{INSTANCE}")
    new, opened = h.open(h.later(day, 1), target, None, item, Mode.WINDOW, linked=case)
    reason = "申请人户籍在天生街道"
    payload = lambda: Transferred(to_township=target, new_case_id=new.case.id, reason=reason)  # noqa: E731
    h.act(case, source, payload, opened + timedelta(minutes=1), f"demo.{INSTANCE}")
    h.act(new, target, Submitted(), opened + timedelta(minutes=2), f"demo.{INSTANCE}")
    h.act(new, target, Accepted(), opened + timedelta(minutes=30), f"demo.{INSTANCE}")


def history(
    today: date,
    now: datetime,
    items: Sequence[CatalogueItem],
    villages: Mapping[str, Sequence[str]],
    staff: Mapping[str, Sequence[tuple[str, str]]],
) -> list[dict[str, Any]]:
    """The demo's case and event documents: ``villages`` by township code, ``staff`` (username,
    display name) by unit code."""
    h = _History(today, now, items)
    days = [today - timedelta(days=n) for n in range(DAYS, -1, -1)]
    for day in (d for d in days if h.calendar.is_workday(d)):
        for township in sorted(villages):
            for _ in range(h.rng.randint(1, 3)):
                _one_case(h, day, township, villages[township], staff)
    townships = sorted(villages)
    counter_items = [i for i in h.items if i.handling_level is HandlingLevel.TOWNSHIP
                     and i.case_type is CaseType.PROMISED and Mode.WINDOW in i.modes]  # fmt: skip
    if len(townships) >= 2 and counter_items:
        _transfer(h, h.later(today - timedelta(days=21), 0), townships[1], townships[0],
                  counter_items[0])  # fmt: skip
    return h.documents()


def write_history(database: Any, docs: list[dict[str, Any]]) -> int:
    """Write the history into ``database`` (a couchdb-python Database) unless its first document
    is there already; return how many documents were written."""
    if not docs or docs[0]["_id"] in database:
        return 0
    written = 0
    for start in range(0, len(docs), 500):
        results = database.update(docs[start : start + 500])
        written += sum(1 for ok, _id, _rev in results if ok)
    return written
