"""The inbox page: the unit's cases with filters, search, colour counts and paging; it
refreshes itself when a case changes (``/inbox/marker``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from litestar import Request, get
from litestar.response import Template

from core.cases import local_date
from core.catalogue import Kind, Mode
from core.fold import CaseStatus
from core.sla import Colour
from township.actions import unit_staff
from township.directory import unit_names, villages_of
from township.inbox import UNASSIGNED, InboxFilter, inbox_page, latest_change
from township.settings import TownshipSettings
from township.web.console import page, staff_guard

__all__ = ["ROUTES"]


def _today() -> date:
    return local_date(datetime.now(UTC))


@get("/inbox", guards=[staff_guard])
async def inbox(request: Request) -> Template:  # type: ignore[type-arg]
    """Every case of the unit, newest first; ``partial=1`` gives only the part that refreshes."""
    settings: TownshipSettings = request.app.state.settings
    wanted = InboxFilter.from_query(dict(request.query_params))
    today = _today()

    def read() -> tuple[Any, str]:
        with request.app.state.sessions() as session:
            return inbox_page(session, settings.code, wanted, today), latest_change(
                session, settings.code
            )

    found, marker = await asyncio.to_thread(read)
    names = await asyncio.to_thread(unit_names, request.app.state)
    partial = bool(request.query_params.get("partial"))
    staff = (  # the filters' staff list; the refreshed part has no filters
        []
        if partial
        else await asyncio.to_thread(unit_staff, request.app.state.couch(), settings.code)
    )
    return page(
        request,
        "inbox_part.html" if partial else "inbox.html",
        found=found,
        wanted=wanted,
        marker=marker,
        names=names,
        villages=villages_of(settings.code, names),
        staff=staff,
        today=today,
        kinds=list(Kind),
        modes=list(Mode),
        statuses=[s for s in CaseStatus if s is not CaseStatus.DRAFT],
        colours=list(Colour),
        unassigned=UNASSIGNED,
    )


@get("/inbox/marker", guards=[staff_guard])
async def inbox_marker(request: Request) -> dict[str, str]:  # type: ignore[type-arg]
    """Changes whenever a case of the inbox changes: the page polls it to refresh itself."""
    settings: TownshipSettings = request.app.state.settings

    def read() -> str:
        with request.app.state.sessions() as session:
            return latest_change(session, settings.code)

    return {"marker": await asyncio.to_thread(read)}


ROUTES = [inbox, inbox_marker]
