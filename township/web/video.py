"""The video desk (视频办): the kiosks' call API, the signalling WebSocket and the console pages.

* ``POST /api/v1/video/calls`` — a kiosk's backend places a call (Basic auth with the kiosk's
  CouchDB credentials, checked by ``township.video.kiosk_village``) and gets the call's kiosk
  token, the WebSocket path and the ICE servers;
* ``/video/ws/{call}?token=…`` — the signalling WebSocket of one call and side;
* ``/video`` — staff mark themselves available, see the incoming calls (refreshed every few
  seconds) and the unit's open video cases; accepting a call opens ``/video/calls/{call}``, the
  call page, which ends with the outcome form (``video_started``/``video_ended`` on the case).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response, WebSocket, get, post, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import select

from core.cases import VideoOutcome
from core.errors import DomainError, InvalidInput, NotFound
from core.fold import OPEN
from sync.errors import SyncError
from sync.readmodel import CaseRow
from township.directory import unit_names
from township.inbox import inbox_scope
from township.video import (
    Call,
    CallRefused,
    CallState,
    KioskDenied,
    Side,
    TokenRefused,
    VideoDesk,
    check_case,
    kiosk_village,
    record,
)
from township.web.console import flash, page, session_user, staff_guard

__all__ = ["ROUTES", "CallRequest", "CallTicket"]

log = logging.getLogger(__name__)


class CallRequest(msgspec.Struct):
    """What a kiosk's backend asks for: a call on one of its village's cases."""

    case_id: str
    case_number: str = ""
    item_name: str = ""


class CallTicket(msgspec.Struct):
    """The kiosk's way into its call."""

    call_id: str
    token: str
    ws_path: str
    ice_servers: list[dict[str, Any]]
    state: str
    staff_available: int


def _desk(connection: Any) -> VideoDesk:
    desk: VideoDesk = connection.app.state.video
    return desk


def _basic(request: Request) -> tuple[str, str]:  # type: ignore[type-arg]
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return "", ""
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password


def _json_error(status: int, error: str, message: str) -> Response[dict[str, str]]:
    return Response({"error": error, "message": message}, status_code=status)


@post("/api/v1/video/calls", status_code=201)
async def place_call(request: Request) -> Response[Any]:  # type: ignore[type-arg]
    """A kiosk calls the township on one of its village's cases (server to server)."""
    state = request.app.state
    try:
        wanted = msgspec.json.decode(await request.body(), type=CallRequest)
    except msgspec.DecodeError:
        return _json_error(400, "invalid_input", "请求格式有误: 须为 JSON, 含 case_id")
    user, password = _basic(request)
    try:
        village = await asyncio.to_thread(kiosk_village, state.settings, user, password)
        await asyncio.to_thread(check_case, state, village, wanted.case_id)
    except KioskDenied as exc:
        return _json_error(exc.status, "unauthorized" if exc.status == 401 else "forbidden",
                           str(exc))  # fmt: skip
    except InvalidInput as exc:
        return _json_error(400, "invalid_input", "；".join(e.message for e in exc.errors))
    except (SyncError, OSError):
        log.exception("a kiosk's call could not be checked")
        return _json_error(503, "not_ready", "镇街服务暂时不可用, 请稍后再试")
    desk = _desk(request)
    call = desk.place(village, wanted.case_id, wanted.case_number, wanted.item_name)
    ticket = CallTicket(
        call_id=call.id,
        token=desk.token(call.id, Side.KIOSK),
        ws_path=f"/video/ws/{call.id}",
        ice_servers=desk.ice_servers,
        state=call.state.value,
        staff_available=len(desk.available),
    )
    return Response(msgspec.to_builtins(ticket), status_code=201)


class _Outbox:
    """One WebSocket's outgoing messages, sent in order by one task."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(message)

    def close(self) -> None:
        self.queue.put_nowait(None)


@websocket("/video/ws/{call_id:str}")
async def signalling(socket: WebSocket, call_id: FromPath[str]) -> None:  # type: ignore[type-arg]
    """The signalling of one call for the side its token names; nothing crosses calls."""
    desk = _desk(socket)
    try:
        call = desk.get(call_id)
        side = desk.check_token(socket.query_params.get("token", ""), call_id)
    except (NotFound, TokenRefused):
        await socket.close(code=4403)  # before accepting: the browser sees the refusal
        return
    await socket.accept()
    outbox = _Outbox()

    async def sender() -> None:
        while True:
            message = await outbox.queue.get()
            if message is None:
                await socket.close(code=4409)
                return
            await socket.send_json(message)

    task = asyncio.create_task(sender())
    desk.join(call, side, outbox)
    try:
        while not task.done():
            receive = asyncio.ensure_future(socket.receive_json())
            done, _ = await asyncio.wait({receive, task}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                break
            desk.relay(call, side, receive.result())
    except TokenRefused as exc:
        with contextlib.suppress(Exception):
            await socket.send_json({"type": "error", "message": str(exc)})
            await socket.close(code=4400)
    except (WebSocketDisconnect, RuntimeError, ValueError):
        pass
    finally:
        desk.leave(call, side, outbox)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# --- the console -----------------------------------------------------------------------------


def _me(request: Request) -> tuple[str, str]:  # type: ignore[type-arg]
    user = session_user(request) or {}
    return str(user.get("user", "")), str(user.get("name", ""))


def _video_cases(state: Any) -> list[CaseRow]:
    with state.sessions() as session:
        return list(
            session.scalars(
                select(CaseRow)
                .where(
                    inbox_scope(state.settings.code),
                    CaseRow.mode == "video",
                    CaseRow.status.in_([s.value for s in OPEN]),
                )
                .order_by(CaseRow.opened_at.desc())
                .limit(100)
            )
        )


@get("/video", guards=[staff_guard])
async def video_desk(request: Request) -> Template:  # type: ignore[type-arg]
    """The video desk: availability, incoming calls, the unit's open video cases."""
    state = request.app.state
    desk = _desk(request)
    me, _ = _me(request)
    cases, names = await asyncio.to_thread(lambda: (_video_cases(state), unit_names(state)))
    return page(
        request, "video.html", calls=desk.waiting(), available=me in desk.available,
        staff_available=sorted(desk.available.values()), cases=cases, names=names, me=me,
    )  # fmt: skip


@get("/video/queue", guards=[staff_guard])
async def video_queue(request: Request) -> Template:  # type: ignore[type-arg]
    """The incoming calls, as the desk's list part (polled by the page)."""
    state = request.app.state
    names = await asyncio.to_thread(unit_names, state)
    me, _ = _me(request)
    return page(request, "video_queue.html", calls=_desk(request).waiting(), names=names, me=me)


@post("/video/available", guards=[staff_guard])
async def set_available(request: Request) -> Redirect:  # type: ignore[type-arg]
    """Mark oneself available for video calls, or not."""
    form = await request.form()
    me, name = _me(request)
    on = str(form.get("available", "")) == "1"
    _desk(request).set_available(me, name, on)
    flash(request, "已设为可接听视频" if on else "已设为暂不接听视频")
    return Redirect("/video", status_code=303)


@post("/video/calls/{call_id:str}/accept", guards=[staff_guard])
async def accept_call(request: Request, call_id: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Take a waiting call and open the call page; ``video_started`` goes on the case."""
    desk = _desk(request)
    me, name = _me(request)
    try:
        call = desk.accept(call_id, me, name)
    except (NotFound, CallRefused) as exc:
        flash(request, f"未能接听：{exc}", "error")
        return Redirect("/video", status_code=303)
    try:
        await asyncio.to_thread(record, request.app.state, call)
    except (DomainError, SyncError) as exc:  # e.g. the case has not synced up yet: at the end
        log.info("video_started of %s waits for the end of the call: %s", call.id, exc)
    return Redirect(f"/video/calls/{quote(call.id)}", status_code=303)


def _own_call(request: Request, call_id: str) -> Call:  # type: ignore[type-arg]
    call = _desk(request).get(call_id)
    me, _ = _me(request)
    if call.staff != me:
        raise CallRefused("这次通话不是由您接听的")
    return call


@get("/video/calls/{call_id:str}", guards=[staff_guard])
async def call_page(request: Request, call_id: FromPath[str]) -> Template | Redirect:  # type: ignore[type-arg]
    """The call: local and remote video, the state, the outcome form."""
    desk = _desk(request)
    try:
        call = _own_call(request, call_id)
    except (NotFound, CallRefused) as exc:
        flash(request, str(exc), "error")
        return Redirect("/video", status_code=303)
    config = {
        "ws": f"/video/ws/{call.id}?token={desk.token(call.id, Side.STAFF)}",
        "iceServers": desk.ice_servers,
    }
    names = await asyncio.to_thread(unit_names, request.app.state)
    return page(
        request, "video_call.html", call=call, names=names, outcomes=list(VideoOutcome),
        config=msgspec.json.encode(config).decode(), open=call.open,
    )  # fmt: skip


@post("/video/calls/{call_id:str}/end", guards=[staff_guard])
async def end_call(request: Request, call_id: FromPath[str]) -> Redirect:  # type: ignore[type-arg]
    """Hang up and record the outcome on the case (``video_started``, ``video_ended``)."""
    form = await request.form()
    desk = _desk(request)
    try:
        call = _own_call(request, call_id)
        outcome = VideoOutcome(str(form.get("outcome", "")))
    except (NotFound, CallRefused) as exc:
        flash(request, str(exc), "error")
        return Redirect("/video", status_code=303)
    except ValueError:
        flash(request, "请选择通话结果", "error")
        return Redirect(f"/video/calls/{quote(call_id)}", status_code=303)
    note = str(form.get("note", "")).strip()[:2000]
    failed = outcome is VideoOutcome.FAILED and call.state is not CallState.IN_CALL
    desk.finish(call, failed=failed)
    try:
        await asyncio.to_thread(record, request.app.state, call, outcome, note)
    except (DomainError, SyncError) as exc:
        flash(request, f"通话已结束, 但结果未能记入办件：{exc}", "error")
        return Redirect(f"/video/calls/{quote(call_id)}", status_code=303)
    flash(request, f"通话已结束, 结果“{outcome.label}”已记入办件 {call.case_number}")
    return Redirect("/video", status_code=303)


ROUTES = [
    place_call,
    signalling,
    video_desk,
    video_queue,
    set_available,
    accept_call,
    call_page,
    end_call,
]
