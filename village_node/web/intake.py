"""The new case wizard (pre-review, routing) and the receipt with the commitment letter."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from village_node.cases import FLAGS, is_online, new_intake_key
from village_node.web.common import (
    agent_guard,
    case_row,
    flash,
    form_dict,
    kiosk_of,
    page,
    session_user,
)

__all__ = ["ROUTES"]


def _intake_page(
    request: Request,  # type: ignore[type-arg]
    guide: Any,
    outcome: Any = None,
    status_code: int = 200,
    key: str = "",
) -> Template:
    kiosk = kiosk_of(request)
    view = kiosk.catalogue.current()
    return page(
        request,
        "case_new.html",
        status_code=status_code,
        guide=guide,
        item=guide.item if guide else None,
        items=view.items if view else (),
        outcome=outcome,
        form=outcome.intake.values if outcome else {},
        errors=outcome.intake.errors if outcome else {},
        intake=outcome.intake if outcome else None,
        intake_key=key
        or (outcome.intake.values.get("intake_key") if outcome else "")
        or new_intake_key(),
        FLAGS=FLAGS,
        online=is_online(kiosk.syncer.state()),
    )


@get("/cases/new", guards=[agent_guard])
async def case_new(request: Request, item: FromQuery[str] = "") -> Template:  # type: ignore[type-arg]
    """The new case wizard: choose the service, then one page of sections."""
    guide = kiosk_of(request).catalogue.item(item) if item else None
    return _intake_page(request, guide)


@post("/cases/new", guards=[agent_guard])
async def case_new_submit(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """``action=review`` checks the form (pre-review, routing); ``action=save`` opens the case."""
    kiosk = kiosk_of(request)
    data = await form_dict(request)
    guide = kiosk.catalogue.item(str(data.get("item", "")))
    view = kiosk.catalogue.current()
    enrolment = kiosk.enrolment
    if guide is None or view is None or enrolment is None:
        return page(
            request, "error.html", status_code=400, message="请先从事项目录中选择要办理的事项"
        )
    user = session_user(request) or {}
    online = is_online(kiosk.syncer.state())
    author = str(user.get("user", ""))
    if data.get("action") == "save":
        outcome = await asyncio.to_thread(
            kiosk.desk.save, data, guide.item, view.version, enrolment,
            online=online, author=author,
        )  # fmt: skip
        if outcome.case is not None:
            if outcome.repeated:
                flash(request, "该表单已提交过, 未重复受理", "error")
            else:
                flash(request, f"已受理, 办件编号 {outcome.case.case_number}")
            return Redirect(f"/cases/{outcome.case.case_number}/receipt")
        return _intake_page(request, guide, outcome, 400)
    outcome = await asyncio.to_thread(
        kiosk.desk.review, data, guide.item, view.version, enrolment,
        online=online, author=author,
    )  # fmt: skip
    return _intake_page(request, guide, outcome)


@get("/cases/{number:str}/receipt", guards=[agent_guard])
async def case_receipt(request: Request, number: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """The receipt and, with commitments, the commitment letter — printable on A5."""
    row = await asyncio.to_thread(case_row, request, number)
    calendar = kiosk_of(request).desk.calendar()
    commitments = [
        (m, bool(calendar.provisional_years_in(row.state.submitted_on or m.deadline, m.deadline)))
        for m in row.case.materials
        if m.deadline is not None
    ]
    return page(request, "receipt.html", row=row, case=row.case, state=row.state,
                commitments=commitments)  # fmt: skip


ROUTES = [case_new, case_new_submit, case_receipt]
