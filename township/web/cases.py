"""One case as the township sees it: its facts, materials, notice, timeline and the actions
allowed now (each a POST that writes one event through ``township.actions``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from core.cases import Delivery, Recipient, SuspendReason
from core.errors import InvalidInput
from core.hierarchy import Level, level_of
from township.actions import (
    ActionRefused,
    Actor,
    CaseActions,
    StaleForm,
    offered_actions,
    unit_staff,
    version_of,
)
from township.directory import unit_names
from township.settings import TownshipSettings
from township.web import commitments, documents
from township.web.case_data import load_case
from township.web.console import flash, page, session_user, staff_guard

__all__ = ["ROUTES", "load_case", "ACTIONS"]


def _page_data(state: Any, unit: str, number: str) -> dict[str, Any]:
    row, case, folded = load_case(state, unit, number)
    offer = offered_actions(case, folded, unit)
    names = unit_names(state)
    return {
        "row": row,
        "case": case,
        "state": folded,
        "names": names,
        "offer": offer,
        "version": version_of(folded),
        "staff": unit_staff(state.couch(), unit) if "assign" in offer else [],
        "townships": sorted(
            (code, name)
            for code, name in names.items()
            if code != unit and level_of(code) is Level.TOWNSHIP
        ),
        "documents": documents.available(folded),
        "suspend_reasons": list(SuspendReason),
        "deliveries": list(Delivery),
        "recipients": list(Recipient),
    }


@get("/cases/{number:str}", guards=[staff_guard])
async def case_page(request: Request, number: FromPath[str]) -> Template:  # type: ignore[type-arg]
    """The case's page, with the forms of the actions allowed now."""
    settings: TownshipSettings = request.app.state.settings
    data = await asyncio.to_thread(_page_data, request.app.state, settings.code, number)
    return page(request, "case.html", **data)


Form = Any


def _keys(form: Form, name: str) -> list[str]:
    return [str(v) for v in form.getall(name, [])]


def _lines(form: Form, name: str) -> list[str]:
    return str(form.get(name, "")).splitlines()


Run = Callable[[CaseActions, str, str, Actor, Form], object]


def _s(form: Form, name: str) -> str:
    return str(form.get(name, ""))


ACTIONS: dict[str, tuple[Run, str]] = {
    "accept": (lambda s, n, v, a, f: s.accept(n, v, a, _s(f, "note")), "已受理，办结时限已确定"),
    "return": (
        lambda s, n, v, a, f: s.return_with_notice(
            n, v, a, _keys(f, "missing"), _lines(f, "extra"), _s(f, "reason")
        ),
        "已退回补正，一次性告知书可以打印",
    ),
    "materials": (
        lambda s, n, v, a, f: s.receive_materials(
            n, v, a, _keys(f, "keys"), _s(f, "from_person"), _s(f, "note")
        ),
        "已记录收到的材料",
    ),
    "commitments": (
        lambda s, n, v, a, f: s.fulfil_commitments(n, v, a, _keys(f, "keys"), _s(f, "note")),
        "已记录承诺材料补交",
    ),
    "assign": (lambda s, n, v, a, f: s.assign(n, v, a, _s(f, "staff"), _s(f, "note")), "已分派"),
    "escalate": (lambda s, n, v, a, f: s.escalate(n, v, a, _s(f, "reason")), "已上报区级办理"),
    "transfer": (
        lambda s, n, v, a, f: s.transfer(n, v, a, _s(f, "to_township"), _s(f, "reason")),
        "已移交，新办件编号 {}",
    ),
    "suspend": (
        lambda s, n, v, a, f: s.suspend(n, v, a, _s(f, "reason"), _s(f, "note")),
        "已中止计时",
    ),
    "resume": (lambda s, n, v, a, f: s.resume(n, v, a, _s(f, "note")), "已恢复计时"),
    "complete": (
        lambda s, n, v, a, f: s.complete(
            n, v, a, _s(f, "result"), _s(f, "delivery"), _s(f, "note")
        ),
        "已办结",
    ),
    "refuse": (
        lambda s, n, v, a, f: s.refuse(n, v, a, _s(f, "reason")),
        "已作出不予受理（办理）决定",
    ),
    "deliver": (
        lambda s, n, v, a, f: s.deliver(
            n, v, a, _s(f, "to"), _s(f, "via"), _s(f, "person"), _s(f, "note")
        ),
        "已记录结果送达",
    ),
    "resolve": (
        lambda s, n, v, a, f: s.resolve_conflicts(n, v, a, _keys(f, "event_ids"), _s(f, "note")),
        "已处理冲突",
    ),
}
"""Each action: its form read and handed to the service, and the flash message on success
(``{}``: what the service returned)."""


@post("/cases/{number:str}/actions/{action:str}", guards=[staff_guard])
async def case_action(
    request: Request,  # type: ignore[type-arg]
    number: FromPath[str],
    action: FromPath[str],
) -> Redirect:
    """Do one action on the case and go back to its page with what happened."""
    if action not in ACTIONS:
        raise NotFoundException("没有这个办理操作")
    run, done = ACTIONS[action]
    form = await request.form()
    user = session_user(request) or {}
    actor = Actor(str(user.get("user", "")), str(user.get("name", "")))
    service = CaseActions(request.app.state)
    version = str(form.get("version", ""))
    try:
        result = await asyncio.to_thread(run, service, number, version, actor, form)
        flash(request, done.format(result))
    except StaleForm as exc:
        flash(request, str(exc), "error")
    except ActionRefused as exc:
        flash(request, f"操作未执行：{exc}", "error")
    except InvalidInput as exc:
        flash(request, "操作未执行：" + "；".join(e.message for e in exc.errors), "error")
    return Redirect(f"/cases/{quote(number.strip())}", status_code=303)


ROUTES = [case_page, case_action, *documents.ROUTES, *commitments.ROUTES]
