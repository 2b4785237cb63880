"""This village's cases: the list with search and filters, one case with its timeline, and
the actions on a case after intake: complete on the spot, resubmit after a return, rate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from core.cases import RATING_LABELS
from core.errors import InvalidInput
from core.visits import PERIODS
from village_node.cases import (
    DELIVERY_CHOICES,
    RATING_TAGS,
    Action,
    CaseDesk,
    CaseRow,
    case_actions,
    event_label,
    notice_lines,
    status_choices,
    visit_days,
)
from village_node.errors import KioskError
from village_node.settings import Enrolment
from village_node.web.common import agent_guard, case_row, flash, kiosk_of, page, session_user

__all__ = ["ROUTES"]

_LISTS = ("provided", "tags")
"""Form fields posted as several checkboxes."""


@get("/cases", guards=[agent_guard])
async def case_list(
    request: Request,  # type: ignore[type-arg]
    q: FromQuery[str] = "",
    status: FromQuery[str] = "",
) -> Template:
    """This village's cases with their folded state, searchable and filtered by status."""
    kiosk = kiosk_of(request)
    enrolment = kiosk.enrolment
    assert enrolment is not None
    rows, total = await asyncio.to_thread(
        kiosk.desk.rows, enrolment.village, query=q, status=status
    )
    return page(
        request, "cases.html", rows=rows, total=total, q=q, status=status, statuses=status_choices()
    )


def _case_page(
    request: Request,  # type: ignore[type-arg]
    row: CaseRow,
    status_code: int = 200,
    *,
    error: str = "",
    error_for: str = "",
    form: dict[str, Any] | None = None,
) -> Template:
    """The case page with the actions its state allows (and an action's error, if any)."""
    enrolment = kiosk_of(request).enrolment
    village = enrolment.village if enrolment is not None else ""
    state = row.state
    return page(
        request,
        "case.html",
        status_code=status_code,
        row=row,
        case=row.case,
        state=state,
        event_label=event_label,
        actions=case_actions(row.case, state, village),
        notice_lines=notice_lines(state.notice) if state.notice is not None else [],
        deliveries=DELIVERY_CHOICES,
        rating_labels=RATING_LABELS,
        rating_tags=RATING_TAGS,
        periods=PERIODS,
        visit_days=visit_days(kiosk_of(request).desk.calendar()),
        error=error,
        error_for=error_for,
        form=form or {},
    )


@get("/cases/{number:str}", guards=[agent_guard])
async def case_page(request: Request, number: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """A case: its state, checklist, timeline, the township's notice if returned, and what the
    agent can do now (complete on the spot, resubmit, collect the rating)."""
    row = await asyncio.to_thread(case_row, request, number)
    return _case_page(request, row)


async def _posted(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """The posted form: strings, and lists for the checkbox groups."""
    form = await request.form()
    data: dict[str, Any] = {k: str(v).strip() for k, v in form.items() if k not in _LISTS}
    for name in _LISTS:
        data[name] = [str(v) for v in form.getall(name)] if name in form else []
    return data


Run = Callable[[CaseDesk, str, Enrolment, dict[str, Any], str], Action]


async def _act(request: Request, number: str, what: str, run: Run) -> Template | Redirect:  # type: ignore[type-arg]
    """Run one action on this village's case: back to the case page with a message, or the
    page again with the error beside the form (nothing written)."""
    kiosk = kiosk_of(request)
    row = await asyncio.to_thread(case_row, request, number)
    enrolment = kiosk.enrolment
    assert enrolment is not None  # the guard saw it
    data = await _posted(request)
    author = str((session_user(request) or {}).get("user", ""))
    try:
        done = await asyncio.to_thread(run, kiosk.desk, row.case.id, enrolment, data, author)
    except (KioskError, InvalidInput) as exc:
        message = exc.errors[0].message if isinstance(exc, InvalidInput) else str(exc)
        return _case_page(request, row, 400, error=message, error_for=what, form=data)
    flash(request, done.message, "warn" if done.follow_up else "ok")
    return Redirect(f"/cases/{row.case.case_number}")


@post("/cases/{number:str}/complete", guards=[agent_guard])
async def complete_case(request: Request, number: FromPath[str]) -> Template | Redirect:  # type: ignore[type-arg]
    """Complete an on-the-spot case of this village here and hand the result over."""

    def run(
        desk: CaseDesk, case_id: str, enrolment: Enrolment, data: dict[str, Any], author: str
    ) -> Action:
        return desk.complete_on_the_spot(
            case_id,
            enrolment,
            result=data.get("result", ""),
            delivery=data.get("delivery", ""),
            handed_over=bool(data.get("handed_over")),
            person=data.get("person", ""),
            note=data.get("note", ""),
            author=author,
        )

    return await _act(request, number, "complete", run)


@post("/cases/{number:str}/resubmit", guards=[agent_guard])
async def resubmit_case(request: Request, number: FromPath[str]) -> Template | Redirect:  # type: ignore[type-arg]
    """Send a returned case back with every material of the township's one-time notice."""

    def run(
        desk: CaseDesk, case_id: str, enrolment: Enrolment, data: dict[str, Any], author: str
    ) -> Action:
        return desk.resubmit(
            case_id,
            enrolment,
            provided=data["provided"],
            note=data.get("note", ""),
            author=author,
        )

    return await _act(request, number, "resubmit", run)


@post("/cases/{number:str}/rate", guards=[agent_guard])
async def rate_case(request: Request, number: FromPath[str]) -> Template | Redirect:  # type: ignore[type-arg]
    """Record the citizen's 好差评 of a completed case."""

    def run(
        desk: CaseDesk, case_id: str, enrolment: Enrolment, data: dict[str, Any], author: str
    ) -> Action:
        return desk.rate(
            case_id,
            enrolment,
            level=data.get("level", ""),
            tags=data["tags"],
            text=data.get("text", ""),
            anonymous=bool(data.get("anonymous")),
            author=author,
        )

    return await _act(request, number, "rate", run)


@post("/cases/{number:str}/visit-request", guards=[agent_guard])
async def request_visit(request: Request, number: FromPath[str]) -> Template | Redirect:  # type: ignore[type-arg]
    """Ask the township for a home visit on a working day and period."""

    def run(
        desk: CaseDesk, case_id: str, enrolment: Enrolment, data: dict[str, Any], author: str
    ) -> Action:
        return desk.request_visit(
            case_id,
            enrolment,
            day=data.get("day", ""),
            period=data.get("period", ""),
            note=data.get("note", ""),
            author=author,
        )

    return await _act(request, number, "visit", run)


ROUTES = [case_list, case_page, complete_case, resubmit_case, rate_case, request_visit]
