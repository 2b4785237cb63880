"""Video sessions at the kiosk (视频办): call the township on a video case, then the call page.

"呼叫镇街" asks the township node for a call (server to server, with the kiosk's CouchDB
credentials), writes ``video_requested`` with the call id it answered (through the case desk's
numbering), starts a sync so the case and the request reach the township, and opens the call
page: camera and microphone, WebRTC signalled through the township's WebSocket, a clear state
at each step and the fallback offer (帮代办 or 上门办) when nobody answers in time or the link
drops. No media is recorded. The kiosk must be online: without the township there is no call.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from core.cases import Case
from village_node.cases import video_refusal
from village_node.errors import KioskError
from village_node.settings import Enrolment, Settings
from village_node.web.common import agent_guard, case_row, flash, kiosk_of, page, session_user

__all__ = ["ROUTES", "Ticket", "place_call"]

CALLS_PATH = "/api/v1/video/calls"
UNREACHABLE = "联系不上镇街服务中心, 现在无法视频办理"


@dataclass(frozen=True)
class Ticket:
    """The township's answer: the call, this kiosk's token and where to signal."""

    call_id: str
    token: str
    ws_url: str
    ice_servers: list[dict[str, Any]]
    staff_available: int
    case_number: str
    placed: float


def place_call(settings: Settings, enrolment: Enrolment, case: Case) -> Ticket:
    """Ask the township for a call on ``case``; raise KioskError when it cannot be had."""
    body = json.dumps(
        {"case_id": case.id, "case_number": case.case_number, "item_name": case.item_name}
    ).encode()
    pair = base64.b64encode(f"{enrolment.username}:{enrolment.password}".encode()).decode()
    base = enrolment.township_url.rstrip("/")
    request = urllib.request.Request(
        base + CALLS_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Basic {pair}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.couch_timeout) as answer:
            data = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message") or ""
        except ValueError:
            message = ""
        raise KioskError(f"镇街服务中心拒绝了视频呼叫 ({exc.code}) {message}".strip()) from None
    except (OSError, ValueError):
        raise KioskError(UNREACHABLE) from None
    scheme = "wss" if base.startswith("https:") else "ws"
    host = base.split("://", 1)[1]
    return Ticket(
        call_id=str(data["call_id"]),
        token=str(data["token"]),
        ws_url=f"{scheme}://{host}{data['ws_path']}?token={quote(str(data['token']))}",
        ice_servers=list(data.get("ice_servers") or []),
        staff_available=int(data.get("staff_available") or 0),
        case_number=case.case_number,
        placed=time.time(),
    )


def _tickets(request: Request) -> dict[str, Ticket]:  # type: ignore[type-arg]
    state = request.app.state
    if not hasattr(state, "video_tickets"):
        state.video_tickets = {}
    tickets: dict[str, Ticket] = state.video_tickets
    return tickets


@post("/cases/{number:str}/video/call", guards=[agent_guard])
async def call_township(request: Request, number: FromPath[str]) -> Template | Redirect:  # type: ignore[type-arg]
    """Call the township on this video case and open the call page."""
    kiosk = kiosk_of(request)
    row = await asyncio.to_thread(case_row, request, number)
    enrolment = kiosk.enrolment
    assert enrolment is not None  # the guard saw it
    author = str((session_user(request) or {}).get("user", ""))
    try:
        refusal = video_refusal(row.case, row.state, enrolment.village)
        if refusal:
            raise KioskError(refusal)
        ticket = await asyncio.to_thread(place_call, kiosk.settings, enrolment, row.case)
        await asyncio.to_thread(
            kiosk.desk.request_video, row.case.id, enrolment, call_id=ticket.call_id, author=author
        )
    except KioskError as exc:
        return page(request, "video_call.html", status_code=400, case=row.case, error=str(exc),
                    config="{}", state_label="失败")  # fmt: skip
    kiosk.syncer.start()  # the case and its request go up while the township answers
    tickets = _tickets(request)
    for old in [k for k, t in tickets.items() if time.time() - t.placed > 3600]:
        del tickets[old]
    tickets[ticket.call_id] = ticket
    return Redirect(f"/cases/{quote(row.case.case_number)}/video/{quote(ticket.call_id)}")


@get("/cases/{number:str}/video/{call_id:str}", guards=[agent_guard])
async def call_page(
    request: Request,  # type: ignore[type-arg]
    number: FromPath[str],
    call_id: FromPath[str],
) -> Template | Redirect:
    """The call: the citizen's and the staff member's video, the state, the fallback offer."""
    row = await asyncio.to_thread(case_row, request, number)
    ticket = _tickets(request).get(call_id)
    if ticket is None or ticket.case_number != row.case.case_number:
        flash(request, "这次视频通话已结束, 请重新呼叫", "error")
        return Redirect(f"/cases/{quote(row.case.case_number)}")
    config = {
        "ws": ticket.ws_url,
        "iceServers": ticket.ice_servers,
        "answerTimeout": kiosk_of(request).settings.video_answer_timeout,
        "staffAvailable": ticket.staff_available,
    }
    return page(request, "video_call.html", case=row.case, error="", state_label="等待接听",
                config=json.dumps(config), call_id=call_id)  # fmt: skip


ROUTES = [call_township, call_page]
