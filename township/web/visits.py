"""The console's door-to-door dispatch: the visit calendar (offers, bookings, requests to
confirm), a case's visit form (schedule, move, cancel, record the outcome) and the printable
daily route sheet of a staff member. The rules live in ``township.visits``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from core.calendar import WorkCalendar
from core.cases import EventKind, VisitOutcome
from core.catalogue import Mode
from core.errors import DomainError, FieldError, InvalidInput
from core.fold import ALLOWED, VisitStatus
from township.actions import refresh
from township.directory import unit_names
from township.read_model import district_rules
from township.settings import TownshipSettings
from township.visits import (
    PERIODS,
    Dispatch,
    Slot,
    free_slots,
    parse_slot,
    publish_availability,
    requested_visits,
    route_sheet,
    set_offers,
    today_here,
    unit_staff,
    week_grid,
    working_days,
)
from township.web.cases import load_case
from township.web.console import flash, page, session_user, staff_guard

__all__ = ["ROUTES", "DAYS_SHOWN", "BOOKING_DAYS"]

DAYS_SHOWN = 5
"""Working days the calendar shows at once."""
BOOKING_DAYS = 10
"""Working days ahead the visit form offers free slots for."""
OUTCOMES = {o.value: o.label for o in VisitOutcome}


def _today(state: Any) -> date:
    """Today, or what a test sets as ``state.visit_today`` (a callable)."""
    clock: Callable[[], date] | None = state.get("visit_today")
    return clock() if clock is not None else today_here()


def _calendar(state: Any) -> WorkCalendar:
    return district_rules(state.couch())[0]


def _me(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    user = session_user(request)
    assert user is not None  # the guard ran
    return user


def _dispatch(state: Any, calendar: WorkCalendar, today: date) -> Dispatch:
    database = state.couch()[state.settings.case_database]
    return Dispatch(state.sessions, database, state.writer, calendar, today)


def _publish(state: Any, days: set[date]) -> None:
    if days:
        settings: TownshipSettings = state.settings
        database = state.couch()[settings.case_database]
        publish_availability(state.sessions, database, settings.code, days)


def _parse_day(text: str | None, default: date) -> date:
    try:
        return date.fromisoformat(text) if text else default
    except ValueError:
        return default


# --- the calendar ---------------------------------------------------------------------------


@get("/visits", guards=[staff_guard])
async def calendar_page(request: Request, start: FromQuery[str] = "") -> Template:  # type: ignore[type-arg]
    """Days × periods × staff: who offers which slot, what is booked, requests to confirm."""
    state = request.app.state
    settings: TownshipSettings = state.settings
    today = _today(state)
    first = _parse_day(start, today)

    def read() -> dict[str, Any]:
        calendar = _calendar(state)
        days = working_days(calendar, first, DAYS_SHOWN)
        staff = unit_staff(state.couch(), settings.code)
        with state.sessions() as session:
            grid = week_grid(session, days, [s for s, _ in staff])
            waiting = requested_visits(session)
        back = first - timedelta(days=1)
        while not calendar.is_workday(back):
            back -= timedelta(days=1)
        earlier = working_days(calendar, back - timedelta(days=10), 40)
        previous = [d for d in earlier if d < first][-DAYS_SHOWN:]
        return {
            "days": days,
            "staff": staff,
            "cells": {f"{s.staff}|{s.day.isoformat()}|{s.period}": c for s, c in grid.items()},
            "waiting": waiting,
            "previous": previous[0] if previous else first,
            "next": working_days(calendar, days[-1] + timedelta(days=1), 1)[0],
        }

    found = await asyncio.to_thread(read)
    names = await asyncio.to_thread(unit_names, state)
    me = _me(request)
    return page(request, "visits.html", **found, names=names, periods=PERIODS, today=today,
                start=first, me=me["user"], head=bool(me.get("head")),
                outcome_labels=OUTCOMES)  # fmt: skip


@post("/visits/availability", guards=[staff_guard])
async def save_availability(request: Request) -> Redirect:  # type: ignore[type-arg]
    """Save the offers shown on the calendar: the head of centre edits everyone's, a staff
    member their own; a booked slot stays offered."""
    state = request.app.state
    settings: TownshipSettings = state.settings
    form = await request.form()
    me = _me(request)
    today = _today(state)
    first = _parse_day(str(form.get("start", "")), today)
    offered: set[Slot] = set()
    try:
        offered = {parse_slot(v) for v in form.getall("offer")}
    except InvalidInput as exc:
        flash(request, "；".join(e.message for e in exc.errors), "error")
        return Redirect(f"/visits?start={first.isoformat()}")

    def save() -> tuple[set[date], list[Slot]]:
        calendar = _calendar(state)
        days = working_days(calendar, first, DAYS_SHOWN)
        staff = dict(unit_staff(state.couch(), settings.code))
        editable = staff if me.get("head") else {k: v for k, v in staff.items() if k == me["user"]}
        changed, kept = set_offers(state.sessions, calendar, today, editable, days, offered)
        _publish(state, changed)
        return changed, kept

    changed, kept = await asyncio.to_thread(save)
    if kept:
        shown = "、".join(f"{s.day.isoformat()} {PERIODS[s.period]} {s.staff}" for s in kept)
        flash(request, f"已有预约的时段不能取消值班: {shown}", "error")
    flash(request, "上门值班已保存" if changed else "上门值班没有变化")
    return Redirect(f"/visits?start={first.isoformat()}")


# --- one case's visits ----------------------------------------------------------------------


@get("/cases/{number:str}/visit", guards=[staff_guard])
async def visit_form(request: Request, number: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """The case's visits and the free slots of the next working days to book or move to."""
    state = request.app.state
    settings: TownshipSettings = state.settings
    today = _today(state)

    def read() -> dict[str, Any]:
        row, case, folded = load_case(state, settings.code, number)
        calendar = _calendar(state)
        days = working_days(calendar, today, BOOKING_DAYS)
        with state.sessions() as session:
            free = free_slots(session, days)
        names = dict(unit_staff(state.couch(), settings.code))
        return {"row": row, "case": case, "state": folded, "free": free, "staff_names": names}

    found = await asyncio.to_thread(read)
    folded = found["state"]
    can_schedule = folded.status in ALLOWED[EventKind.VISIT_SCHEDULED]
    return page(request, "visits_case.html", **found, periods=PERIODS, outcomes=list(VisitOutcome),
                can_schedule=can_schedule, door_to_door=found["case"].mode is Mode.DOOR_TO_DOOR,
                open_statuses=(VisitStatus.REQUESTED, VisitStatus.SCHEDULED, VisitStatus.ABSENT,
                               VisitStatus.MORE_MATERIALS))  # fmt: skip


async def _act(
    request: Request,  # type: ignore[type-arg]
    number: str,
    action: Callable[[Dispatch, Any, Any, dict[str, Any]], str],
) -> Redirect:
    """Load the case, run ``action`` with the dispatch and the form, publish the days it
    changed; a refusal is shown on the form, nothing changed."""
    state = request.app.state
    settings: TownshipSettings = state.settings
    form = dict((await request.form()).items())
    today = _today(state)

    def run() -> str:
        _, case, folded = load_case(state, settings.code, number)
        dispatch = _dispatch(state, _calendar(state), today)
        try:
            return action(dispatch, case, folded, form)
        finally:
            _publish(state, dispatch.touched)
            refresh(state)  # the page we go back to reads the read model

    target = f"/cases/{number}/visit"
    try:
        flash(request, await asyncio.to_thread(run))
    except DomainError as exc:
        if isinstance(exc, InvalidInput):
            flash(request, "；".join(e.message for e in exc.errors), "error")
        else:
            flash(request, str(exc), "error")
    return Redirect(target)


@post("/cases/{number:str}/visit", guards=[staff_guard])
async def schedule_visit(request: Request, number: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Book the chosen slot: a new visit, or the move of ``visit_id`` (writes
    ``visit_scheduled``; a moved visit's old slot is free again)."""
    me = _me(request)

    def action(dispatch: Dispatch, case: Any, folded: Any, form: dict[str, Any]) -> str:
        slot = parse_slot(str(form.get("slot", "")))
        visit_id = str(form.get("visit_id", "")).strip() or None
        if visit_id is None and case.mode is not Mode.DOOR_TO_DOOR:
            raise InvalidInput(
                FieldError(
                    "slot",
                    "只有上门办的办件才能新安排上门服务",
                    "Only door-to-door cases get a new visit",
                )
            )
        dispatch.schedule(case, folded, slot, author=me["user"], visit_id=visit_id,
                          note=str(form.get("note", ""))[:500])  # fmt: skip
        label = f"{slot.day.isoformat()} {PERIODS[slot.period]}"
        return f"上门服务已安排: {label}"

    return await _act(request, number, action)


@post("/cases/{number:str}/visit/cancel", guards=[staff_guard])
async def cancel_visit(request: Request, number: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Cancel a visit (writes ``visit_cancelled``; its slot is free again)."""
    me = _me(request)

    def action(dispatch: Dispatch, case: Any, folded: Any, form: dict[str, Any]) -> str:
        visit_id = str(form.get("visit_id", "")).strip()
        dispatch.cancel(case, folded, visit_id, author=me["user"],
                                reason=str(form.get("reason", ""))[:500])  # fmt: skip
        return "上门服务已取消"

    return await _act(request, number, action)


@post("/cases/{number:str}/visit/record", guards=[staff_guard])
async def record_visit(request: Request, number: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Record what the visit came to (writes ``visit_recorded``)."""
    me = _me(request)

    def action(dispatch: Dispatch, case: Any, folded: Any, form: dict[str, Any]) -> str:
        try:
            outcome = VisitOutcome(str(form.get("outcome", "")))
        except ValueError:
            raise InvalidInput(
                FieldError("outcome", "请选择上门结果", "Pick the outcome")
            ) from None
        dispatch.record(case, folded, str(form.get("visit_id", "")).strip(), outcome,
                        author=me["user"], note=str(form.get("note", ""))[:500])  # fmt: skip
        follow = "" if outcome is VisitOutcome.DONE else ", 请重新安排上门时间"
        return f"已记录上门结果: {outcome.label}{follow}"

    return await _act(request, number, action)


# --- route sheet ----------------------------------------------------------------------------


@get("/visits/route", guards=[staff_guard])
async def route_page(
    request: Request,  # type: ignore[type-arg]
    staff: FromQuery[str] = "",
    day: FromQuery[str] = "",
) -> Template:
    """A staff member's visits of one day, grouped by village, to print."""
    state = request.app.state
    settings: TownshipSettings = state.settings
    me = _me(request)
    who = (staff or me["user"]).strip().lower()
    on = _parse_day(day, _today(state))

    def read() -> dict[str, Any]:
        names = dict(unit_staff(state.couch(), settings.code))
        if who not in names:
            raise NotFoundException("没有这位工作人员")
        with state.sessions() as session:
            groups = route_sheet(session, who, on)
        return {"groups": groups, "staff_name": names[who]}

    found = await asyncio.to_thread(read)
    villages = await asyncio.to_thread(unit_names, state)
    return page(request, "route_sheet.html", **found, staff=who, day=on, villages=villages,
                periods=PERIODS, outcome_labels=OUTCOMES)  # fmt: skip


ROUTES = [
    calendar_page,
    save_availability,
    visit_form,
    schedule_visit,
    cancel_visit,
    record_visit,
    route_page,
]
