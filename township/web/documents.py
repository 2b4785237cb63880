"""Printable documents of a case's decisions (A4): 受理通知书, 一次性告知书, 不予受理通知书 and
the result notice (办结通知书), each drawn from the case's folded state in the read model."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select

from core.cases import Returned, event_from_doc, local_date
from core.errors import InvalidInput
from core.fold import CaseState, CaseStatus
from core.hierarchy import Level, level_of
from sync.readmodel import CaseEventDoc
from township.directory import unit_names
from township.settings import TownshipSettings
from township.web.case_data import load_case
from township.web.console import page, staff_guard

__all__ = ["ROUTES", "KINDS", "available"]

KINDS: dict[str, str] = {
    "acceptance": "受理通知书",
    "notice": "一次性告知书",
    "refusal": "不予受理通知书",
    "result": "办结通知书",
}
"""The printable documents: path name → title."""


def available(state: CaseState) -> list[tuple[str, str]]:
    """The documents a case has grounds for now: (kind, title)."""
    ready = {
        "acceptance": state.accepted_on is not None,
        "notice": state.returns > 0,
        "refusal": state.status is CaseStatus.REFUSED,
        "result": state.status is CaseStatus.COMPLETED,
    }
    return [(kind, title) for kind, title in KINDS.items() if ready[kind]]


def centre_name(unit: str, names: dict[str, str]) -> str:
    """How a document names the centre issuing it."""
    name = names.get(unit, unit)
    if level_of(unit) is Level.DISTRICT:
        return f"{name}政务服务中心"
    return f"{name}便民服务中心"


def latest_notice(state: Any, case_id: str) -> tuple[Returned, date] | None:
    """The case's latest one-time notice and its date (it stays printable after resubmission)."""
    with state.sessions() as session:
        docs = session.scalars(select(CaseEventDoc.doc).where(CaseEventDoc.case_id == case_id))
        notices = []
        for doc in docs:
            if doc.get("kind") != "returned":
                continue
            try:
                event = event_from_doc(doc)
            except InvalidInput:
                continue
            if isinstance(event.payload, Returned):
                notices.append((event.stamp, event.payload, local_date(event.wall_time)))
    if not notices:
        return None
    _, notice, day = max(notices, key=lambda n: n[0])
    return notice, day


def _document(state: Any, unit: str, number: str, kind: str) -> dict[str, Any]:
    row, case, folded = load_case(state, unit, number)
    if kind not in dict(available(folded)):
        raise NotFoundException("本件没有这份文书（尚未作出相应决定）")
    names = unit_names(state)
    data: dict[str, Any] = {
        "kind": kind,
        "title": KINDS[kind],
        "centre": centre_name(unit, names),
        "row": row,
        "case": case,
        "state": folded,
        "village_name": names.get(case.village or "", ""),
        "issued_on": None,
    }
    if kind == "notice":
        found = latest_notice(state, case.id)
        if found is None:
            raise NotFoundException("本件没有一次性告知记录")
        data["notice"], data["issued_on"] = found
    else:
        data["issued_on"] = {
            "acceptance": folded.accepted_on,
            "refusal": folded.refused_on,
            "result": folded.completed_on,
        }[kind]
    return data


@get("/cases/{number:str}/documents/{kind:str}", guards=[staff_guard])
async def document_page(
    request: Request,  # type: ignore[type-arg]
    number: FromPath[str],
    kind: FromPath[str],
) -> Template:
    """One printable document of the case."""
    if kind not in KINDS:
        raise NotFoundException("没有这种文书")
    settings: TownshipSettings = request.app.state.settings
    data = await asyncio.to_thread(_document, request.app.state, settings.code, number, kind)
    return page(request, f"doc_{kind}.html", **data)


ROUTES = [document_page]
