"""This village's cases: the list with search and filters, and one case with its timeline."""

from __future__ import annotations

import asyncio

from litestar import Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from village_node.cases import event_label, status_choices
from village_node.web.common import agent_guard, case_row, kiosk_of, page

__all__ = ["ROUTES"]


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


@get("/cases/{number:str}", guards=[agent_guard])
async def case_page(request: Request, number: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """A case: its state, checklist, timeline and the township's notice if returned."""
    row = await asyncio.to_thread(case_row, request, number)
    return page(request, "case.html", row=row, case=row.case, state=row.state,
                event_label=event_label)  # fmt: skip


ROUTES = [case_list, case_page]
