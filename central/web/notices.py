"""The administrators' list of citizen notifications (issue 6 item 6): ``/notices``, filtered
by kind and status, searched by phone, booking code or case number."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template

from central.services.notifications import (
    NoticeFilter,
    NoticeKind,
    NoticeStatus,
    list_notices,
)
from central.web.auth import admin_guard
from central.web.deps import in_db
from central.web.ui import page

__all__ = ["handlers"]


def _rows(session: Any, wanted: NoticeFilter) -> dict[str, Any]:
    rows, total = list_notices(session, wanted)
    for row in rows:
        session.expunge(row)
    return {"notices": rows, "total": total}


@get("/notices", guards=[admin_guard])
async def notices_page(
    request: Request,  # type: ignore[type-arg]
    kind: FromQuery[str] = "",
    status: FromQuery[str] = "",
    q: FromQuery[str] = "",
) -> Template:
    """The newest notifications (200 at most) matching the filters."""
    wanted = NoticeFilter(kind=kind[:20], status=status[:10], q=q[:40])
    found = await in_db(request, _rows, wanted)
    return page(request, "notices.html", kind=wanted.kind, status=wanted.status, q=wanted.q,
                Kind=NoticeKind, Status=NoticeStatus, **found)  # fmt: skip


handlers = [notices_page]
