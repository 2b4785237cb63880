"""差评 follow-ups: the unit's bad ratings listed until their follow-up is closed (the page
``/follow-ups``), and a step of one case's follow-up posted from its case page.

The list reads the read model only: the cases of the unit's inbox whose follow-up is open
(``CaseRow.follow_up_open``) or that ever had a 差评 (their ``rated`` event documents, kept in
the read model beside the case rows), then each one's ratings and steps from those few cases'
stored state and event documents, as ``township.actions.follow_up_round`` reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.calendar import DueDate, WorkCalendar
from core.cases import RATING_LABELS, local_date
from core.errors import InvalidInput
from core.fold import CaseState
from sync.readmodel import CaseEventDoc, CaseRow
from township.actions import (
    FOLLOW_UP_WORKING_DAYS,
    ActionRefused,
    Actor,
    CaseActions,
    FollowUpRound,
    StaleForm,
    follow_up_round,
    version_of,
)
from township.directory import unit_names
from township.inbox import inbox_scope
from township.read_model import district_rules
from township.settings import TownshipSettings
from township.web.console import flash, page, session_user, staff_guard

__all__ = ["ROUTES", "Shown", "FollowUpItem", "list_follow_ups"]


class Shown(StrEnum):
    """Which follow-ups the page lists."""

    OPEN = "open"
    LATE = "late"
    CLOSED = "closed"


@dataclass(frozen=True)
class FollowUpItem:
    """One case's 差评 follow-up as the list shows it."""

    row: CaseRow
    round: FollowUpRound
    due: DueDate
    """The deadline the first step set, or (before it) the default one."""
    due_set: bool
    late: bool
    version: str


def _bad_rating_cases() -> Any:
    """Ids of the cases with a ``rated`` event of level 1 or 2 (a 差评) in the read model."""
    doc = CaseEventDoc.doc
    return select(CaseEventDoc.case_id).where(
        doc["kind"].as_string() == "rated",
        doc["payload"]["level"].as_integer() <= 2,
    )


def list_follow_ups(
    session: Session, unit: str, shown: Shown, today: date, calendar: WorkCalendar
) -> list[FollowUpItem]:
    """The unit's 差评 follow-ups: open ones (earliest deadline first), late ones only, or
    closed ones (latest rating first)."""
    rows = list(
        session.scalars(
            select(CaseRow).where(
                inbox_scope(unit),
                CaseRow.follow_up_open.is_(True)
                if shown is not Shown.CLOSED
                else CaseRow.follow_up_open.is_(False),
                or_(CaseRow.follow_up_open.is_(True), CaseRow.case_id.in_(_bad_rating_cases())),
            )
        )
    )
    docs: dict[str, list[dict[str, Any]]] = {}
    if rows:
        found = session.execute(
            select(CaseEventDoc.case_id, CaseEventDoc.doc).where(
                CaseEventDoc.case_id.in_([r.case_id for r in rows]),
                CaseEventDoc.doc["kind"].as_string().in_(["rated", "follow_up"]),
            )
        )
        for case_id, doc in found:
            docs.setdefault(case_id, []).append(doc)
    items: list[FollowUpItem] = []
    for row in rows:
        state = msgspec.convert(row.state, CaseState, strict=False)
        found_round = follow_up_round(state, docs.get(row.case_id, []))
        if found_round is None or found_round.open != row.follow_up_open:
            continue  # the read model is catching up with this case
        due = found_round.due(calendar)
        late = found_round.open and today > due.day
        if shown is Shown.LATE and not late:
            continue
        items.append(
            FollowUpItem(
                row, found_round, due, found_round.deadline is not None, late, version_of(state)
            )
        )
    if shown is Shown.CLOSED:
        items.sort(key=lambda i: (i.round.rated_on, i.row.case_number), reverse=True)
    else:
        items.sort(key=lambda i: (i.due.day, i.row.case_number))
    return items


def _calendar(state: Any) -> WorkCalendar:
    calendar, _ = district_rules(state.couch())
    return calendar


@get("/follow-ups", guards=[staff_guard])
async def follow_ups_page(request: Request, show: FromQuery[str] = "open") -> Template:  # type: ignore[type-arg]
    """Every 差评 of the unit with its follow-up: open, late or closed."""
    settings: TownshipSettings = request.app.state.settings
    shown = Shown(show) if show in {s.value for s in Shown} else Shown.OPEN
    today = local_date(datetime.now(UTC))
    state = request.app.state

    def read() -> tuple[list[FollowUpItem], dict[str, str]]:
        calendar = _calendar(state)
        with state.sessions() as session:
            items = list_follow_ups(session, settings.code, shown, today, calendar)
        return items, unit_names(state)

    items, names = await asyncio.to_thread(read)
    return page(
        request, "follow_ups.html", items=items, shown=shown, shows=list(Shown), today=today,
        names=names, default_days=FOLLOW_UP_WORKING_DAYS, rating_labels=RATING_LABELS,
    )  # fmt: skip


def _errors(errors: Sequence[Any]) -> str:
    return "；".join(e.message for e in errors)


@post("/cases/{number:str}/follow-up", guards=[staff_guard])
async def follow_up_step(request: Request, number: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Write one step of the case's 差评 follow-up and go back to the case page."""
    form = await request.form()
    user = session_user(request) or {}
    actor = Actor(str(user.get("user", "")), str(user.get("name", "")))
    service = CaseActions(request.app.state)

    def field(name: str) -> str:
        return str(form.get(name, ""))

    try:
        step = await asyncio.to_thread(
            service.follow_up, number, field("version"), actor, field("step"), field("note"),
            field("deadline"), field("level"),
        )  # fmt: skip
        flash(request, f"已记录差评“{step.label}”")
    except StaleForm as exc:
        flash(request, str(exc), "error")
    except ActionRefused as exc:
        flash(request, f"操作未执行：{exc}", "error")
    except InvalidInput as exc:
        flash(request, "操作未执行：" + _errors(exc.errors), "error")
    return Redirect(f"/cases/{quote(number.strip())}#follow-up", status_code=303)


ROUTES = [follow_ups_page, follow_up_step]
