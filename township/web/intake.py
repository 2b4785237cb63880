"""Counter intake pages (窗口受理): the service picker, one page of sections like the kiosk's
wizard (applicant, representative, pre-review, routing, duplicate warning, the one-time notice
when blocked), then the printable receipt of the saved case."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from core.cases import Case, case_from_doc, case_id_from_number, local_date
from core.catalogue import Kind, Mode
from core.errors import InvalidInput
from core.intake import FLAGS, new_intake_key
from sync.couch import couch_errors
from township.catalogue import CatalogueVersion, TownshipCatalogue
from township.directory import unit_names
from township.intake import CounterDesk, CounterOutcome
from township.read_model import district_rules
from township.settings import TownshipSettings
from township.web.console import flash, page, session_user, staff_guard

__all__ = ["ROUTES"]


def _catalogue(state: Any) -> TownshipCatalogue:
    """The node's catalogue reader (made on first use, kept on the app's state)."""
    found = state.get("counter_catalogue")
    if found is None:
        found = state.counter_catalogue = TownshipCatalogue()
    return found  # type: ignore[no-any-return]


def _desk(state: Any) -> CounterDesk:
    """The node's counter intake service (made on first use, kept on the app's state)."""
    found = state.get("counter_desk")
    if found is None:
        settings: TownshipSettings = state.settings
        found = state.counter_desk = CounterDesk(
            state.sessions, state.writer, settings.code, settings.case_database
        )
    return found  # type: ignore[no-any-return]


def _intake_page(
    request: Request,  # type: ignore[type-arg]
    view: CatalogueVersion | None,
    code: str = "",
    outcome: CounterOutcome | None = None,
    status_code: int = 200,
    q: str = "",
    kind: str = "",
) -> Template:
    entry = view.by_code.get(code) if view is not None and code else None
    found = view.search(q, kind) if view is not None else []
    groups = [(k, [e for e in found if e.item.kind is k]) for k in Kind]
    first = next((e for _, group in groups for e in group), None)
    return page(
        request,
        "counter_new.html",
        status_code=status_code,
        item=entry.item if entry else None,
        catalogue_version=view.version if view is not None else 0,
        entries=found,
        groups=groups,
        first_code=first.item.code if first else "",
        counts=view.count_by_kind() if view is not None else {},
        q=q,
        kind=kind,
        Kind=Kind,
        Mode=Mode,
        outcome=outcome,
        form=outcome.intake.values if outcome else {},
        errors=outcome.intake.errors if outcome else {},
        intake=outcome.intake if outcome else None,
        intake_key=(outcome.intake.values.get("intake_key") if outcome else "") or new_intake_key(),
        FLAGS=FLAGS,
    )


@get("/counter/new", guards=[staff_guard])
async def counter_new(
    request: Request,  # type: ignore[type-arg]
    item: FromQuery[str] = "",
    q: FromQuery[str] = "",
    kind: FromQuery[str] = "",
) -> Template:
    """Counter intake: find and choose the service, then the form's sections."""
    state = request.app.state
    view = await asyncio.to_thread(_catalogue(state).current, state.couch())
    kind = kind if kind in {k.value for k in Kind} else ""
    return _intake_page(request, view, item.strip(), q=q.strip()[:50], kind=kind)


@post("/counter/new", guards=[staff_guard])
async def counter_new_submit(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """``action=review`` checks the form (pre-review, routing, duplicates) and writes nothing;
    ``action=save`` opens the case with its ``submitted`` event, then shows the receipt."""
    state = request.app.state
    posted = await request.form()
    data: dict[str, Any] = {k: v for k, v in posted.items() if isinstance(v, str)}
    data["flags"] = [str(f) for f in posted.getall("flags")] if "flags" in posted else []
    server = state.couch()
    view = await asyncio.to_thread(_catalogue(state).current, server)
    code = str(data.get("item", "")).strip()
    entry = view.by_code.get(code) if view is not None else None
    if view is None or entry is None:
        message = "没有这个事项: 请先从事项目录中选择要办理的事项"
        return page(request, "error.html", status_code=400, message=message)
    author = str((session_user(request) or {}).get("user", ""))
    desk = _desk(state)
    if data.get("action") == "save":
        outcome = await asyncio.to_thread(
            desk.save, server, data, entry.item, view.version, author=author
        )
        if outcome.case is not None:
            if outcome.repeated:
                flash(request, "该表单已提交过, 未重复受理", "error")
            else:
                flash(request, f"已受理, 办件编号 {outcome.case.case_number}")
            return Redirect(f"/counter/{outcome.case.case_number}/receipt")
        return _intake_page(request, view, code, outcome, 400)
    outcome = await asyncio.to_thread(
        desk.review, server, data, entry.item, view.version, author=author
    )
    return _intake_page(request, view, code, outcome)


def _counter_case(state: Any, number: str) -> Case:
    """A case opened at this unit's counter, read from CouchDB (the read model may lag)."""
    settings: TownshipSettings = state.settings
    try:
        case_id = case_id_from_number(number)
    except InvalidInput:
        raise NotFoundException("没有这个办件") from None
    with couch_errors():
        doc = state.couch()[settings.case_database].get(case_id)
    if doc is None or doc.get("township") != settings.code or doc.get("village") is not None:
        raise NotFoundException("没有这个窗口受理的办件")
    return case_from_doc(dict(doc))


@get("/counter/{number:str}/receipt", guards=[staff_guard])
async def counter_receipt(request: Request, number: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """The printable receipt (受理回执) with the commitment letter when materials follow."""
    state = request.app.state
    case = await asyncio.to_thread(_counter_case, state, number)
    calendar, _ = await asyncio.to_thread(district_rules, state.couch())
    opened = local_date(case.wall_time)
    due = calendar.add_working_days(opened, case.promised_limit_days)
    commitments = [
        (m, bool(calendar.provisional_years_in(opened, m.deadline)))
        for m in case.materials
        if m.deadline is not None
    ]
    names = await asyncio.to_thread(unit_names, state)
    return page(request, "counter_receipt.html", case=case, opened=opened, due=due,
                commitments=commitments, names=names)  # fmt: skip


ROUTES = [counter_new, counter_new_submit, counter_receipt]
