"""The district's supervision pages (issue 8): the kiosk fleet and the standardisation report.

Both read the district read model (``central.services.district_model`` keeps it); the report
also reads the newest published catalogue from CouchDB.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template

from central.services import hierarchy
from central.services.fleet import STATES, FleetFilter, fleet
from central.services.published import current_catalogue
from central.services.standards import StandardsFilter, standards_report
from central.web.auth import admin_guard
from central.web.deps import in_db
from central.web.ui import page
from core.catalogue import Kind
from sync.errors import SyncError

__all__ = ["handlers"]


def _townships(session: Any) -> list[tuple[str, str]]:
    return [(u.code, u.name) for u in hierarchy.list_units(session, level="township", limit=1000)]


def _fleet_context(session: Any, wanted: FleetFilter) -> dict[str, Any]:
    return {"kiosks": fleet(session, wanted), "townships": _townships(session)}


def _hours(text: str, default: float) -> float:
    try:
        value = float(text)
    except ValueError:
        return default
    return value if 0 < value <= 24 * 365 else default


@get("/fleet", guards=[admin_guard])
async def fleet_page(
    request: Request,  # type: ignore[type-arg]
    township: FromQuery[str] = "",
    village: FromQuery[str] = "",
    q: FromQuery[str] = "",
    show: FromQuery[str] = "",
    silent_hours: FromQuery[str] = "",
) -> Template:
    """Every enrolled kiosk: village, last sync, waiting and refused documents, clock, catalogue
    version, revoked or not; silent ones highlighted."""
    settings = request.app.state.settings
    wanted = FleetFilter(
        township=township[:12],
        village=village[:12],
        q=q[:40],
        state=show if show in STATES else "",
        silent_hours=_hours(silent_hours, settings.kiosk_silent_hours),
        skew_minutes=settings.kiosk_skew_minutes,
    )
    context = await in_db(request, _fleet_context, wanted)
    return page(request, "fleet.html", wanted=wanted, STATES=STATES, **context)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _standards_context(session: Any, items: Any, wanted: StandardsFilter) -> dict[str, Any]:
    rows, total = standards_report(session, items, wanted)
    return {"rows": rows, "total": total}


@get("/standards", guards=[admin_guard])
async def standards_page(
    request: Request,  # type: ignore[type-arg]
    kind: FromQuery[str] = "",
    q: FromQuery[str] = "",
    completed_from: FromQuery[str] = "",
    completed_to: FromQuery[str] = "",
) -> Template:
    """Legal vs promised limits per item and in total, with the actual average days taken."""
    wanted = StandardsFilter(
        kind=kind if kind in {k.value for k in Kind} else "",
        q=q[:40],
        completed_from=_day(completed_from),
        completed_to=_day(completed_to),
    )
    couch = request.app.state.couch
    try:
        published = await asyncio.to_thread(lambda: current_catalogue(couch.server()))
    except SyncError:
        published, reachable = None, False
    else:
        reachable = True
    items = published.items if published is not None else ()
    context = await in_db(request, _standards_context, items, wanted)
    return page(
        request,
        "standards.html",
        wanted=wanted,
        published=published,
        couch_reachable=reachable,
        **context,
    )


handlers = [fleet_page, standards_page]
