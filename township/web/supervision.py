"""The supervision page: today's colours by staff member and by service, and what is overdue."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from litestar import Request, get
from litestar.response import Template

from core.cases import local_date
from core.sla import Colour
from township.directory import unit_names
from township.settings import TownshipSettings
from township.supervision import OVERDUE_LIMIT, Supervision, supervise
from township.web.console import page, staff_guard

__all__ = ["ROUTES"]


@get("/supervision", guards=[staff_guard])
async def supervision(request: Request) -> Template:  # type: ignore[type-arg]
    """Three-colour supervision of the unit's cases."""
    settings: TownshipSettings = request.app.state.settings
    today = local_date(datetime.now(UTC))

    def read() -> Supervision:
        with request.app.state.sessions() as session:
            return supervise(session, settings.code, today)

    figures = await asyncio.to_thread(read)
    names = await asyncio.to_thread(unit_names, request.app.state)
    return page(
        request, "supervision.html", s=figures, colours=list(Colour), today=today,
        names=names, overdue_limit=OVERDUE_LIMIT,
    )  # fmt: skip


ROUTES = [supervision]
