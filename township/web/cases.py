"""One case as the township sees it: its facts, materials, notice and timeline."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select

from core.cases import Case, case_from_doc
from core.fold import CaseState
from sync.readmodel import CaseDoc, CaseRow
from township.directory import unit_names
from township.inbox import inbox_scope
from township.settings import TownshipSettings
from township.web.console import page, staff_guard

__all__ = ["ROUTES", "load_case"]


def load_case(state: Any, unit: str, number: str) -> tuple[CaseRow, Case, CaseState]:
    """The case numbered ``number`` in ``unit``'s inbox, from the read model, or 404."""
    with state.sessions() as session:
        found = session.execute(
            select(CaseRow, CaseDoc.doc)
            .join(CaseDoc, CaseDoc.case_id == CaseRow.case_id)
            .where(CaseRow.case_number == number.strip(), inbox_scope(unit))
        ).first()
    if found is None:
        raise NotFoundException("没有这个办件, 或它不归本中心办理")
    row, doc = found
    return row, case_from_doc(doc), msgspec.convert(row.state, CaseState, strict=False)


@get("/cases/{number:str}", guards=[staff_guard])
async def case_page(request: Request, number: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """The case's page."""
    settings: TownshipSettings = request.app.state.settings
    row, case, state = await asyncio.to_thread(load_case, request.app.state, settings.code, number)
    names = await asyncio.to_thread(unit_names, request.app.state)
    return page(request, "case.html", row=row, case=case, state=state, names=names)


ROUTES = [case_page]
