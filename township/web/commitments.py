"""The overdue commitments page: promised materials past their deadline, per village, for the
village agents to remind the applicants (printable)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import Request, get
from litestar.response import Template

from core.cases import local_date
from township.commitments import overdue_commitments
from township.directory import unit_names
from township.settings import TownshipSettings
from township.web.console import page, staff_guard

__all__ = ["ROUTES"]


def _data(state: Any, unit: str) -> dict[str, Any]:
    today = local_date(datetime.now(UTC))
    with state.sessions() as session:
        found = overdue_commitments(session, unit, today)
    return {"overdue": found, "today": today, "names": unit_names(state)}


@get("/commitments/overdue", guards=[staff_guard])
async def overdue_page(request: Request) -> Template:  # type: ignore[type-arg]
    """Commitments past their deadline, grouped by village."""
    settings: TownshipSettings = request.app.state.settings
    data = await asyncio.to_thread(_data, request.app.state, settings.code)
    return page(request, "commitments.html", **data)


ROUTES = [overdue_page]
