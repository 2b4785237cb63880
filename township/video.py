"""Video sessions (视频办): calls from village kiosks answered by township staff.

A call lives in this node process's memory only (``VideoDesk``): its id, case, village, state
(waiting → connecting → in_call → ended, or failed) and the staff member who accepted it. No
media passes through the node: it relays the WebRTC signalling (offer, answer, ICE candidates,
hang-up) between the two sides of one call over WebSockets, and the browsers connect directly.

Who may join which side:

* a kiosk places a call server to server (its backend, not the browser), authenticated with its
  CouchDB credentials: the node asks its own CouchDB ``GET /_session`` with them and requires
  the ``village:<v>`` role of one village of this township (``kiosk_village``);
* staff accept a call from their console session (staff of this unit only, ``staff_guard``).

Either way the node answers a short-lived token (HMAC-SHA256 with the node's secret key) naming
the call and the side; the WebSocket of that call admits the token once it checks, within its
lifetime. What happened is written on the case as ``video_started`` / ``video_ended`` events by
the console (``record``); the kiosk writes ``video_requested`` itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from core.cases import (
    CaseEvent,
    EventPayload,
    VideoEnded,
    VideoOutcome,
    VideoStarted,
    parse_case_id,
)
from core.errors import FieldError, InvalidInput, NotFound
from core.fold import allowed_kinds
from core.hierarchy import Level, level_of, township_of
from sync.couch import couch_errors, get_document
from township.actions import CaseActions, refresh
from township.errors import TownshipError
from township.settings import TownshipSettings, public_url

__all__ = [
    "CallState",
    "Side",
    "Call",
    "CallRefused",
    "KioskDenied",
    "TokenRefused",
    "VideoDesk",
    "SIGNALS",
    "kiosk_village",
    "check_case",
    "record",
]

SIGNALS = frozenset({"offer", "answer", "candidate", "hangup", "connected"})
"""What a side may send; everything else is refused and closes its socket."""
MAX_SIGNAL = 64 * 1024
"""Bytes of one signalling message (an SDP offer is a few kilobytes)."""
PENDING = 64
"""Messages kept for a side that is not connected yet."""
KEEP_ENDED = 600.0
"""Seconds an ended call is kept (its sides may still reconnect to learn the end)."""
RING_LIMIT = 300.0
"""Seconds a call may ring unanswered before the desk drops it (kiosks give up after their
own answer timeout, 60 s by default)."""


class CallState(StrEnum):
    """Where a call stands."""

    WAITING = "waiting"
    CONNECTING = "connecting"
    IN_CALL = "in_call"
    ENDED = "ended"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            "waiting": "等待接听",
            "connecting": "连接中",
            "in_call": "通话中",
            "ended": "已结束",
            "failed": "失败",
        }[self.value]


class Side(StrEnum):
    """The two sides of a call."""

    KIOSK = "kiosk"
    STAFF = "staff"

    @property
    def other(self) -> Side:
        """The side a message of this side goes to."""
        return Side.STAFF if self is Side.KIOSK else Side.KIOSK


class CallRefused(TownshipError):
    """The call cannot do that now (taken by someone else, already over)."""


class KioskDenied(TownshipError):
    """The kiosk's credentials do not open a village of this township (``status``: 401/403)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TokenRefused(TownshipError):
    """A call token that is malformed, forged, expired or for another call."""


class Peer(Protocol):
    """One side's connection: the WebSocket handler's outbox."""

    def send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the browser."""

    def close(self) -> None:
        """End the connection (a newer one of the same side took over)."""


@dataclass
class Call:
    """One call from a kiosk."""

    id: str
    case_id: str
    case_number: str
    item_name: str
    village: str
    created: float
    state: CallState = CallState.WAITING
    staff: str = ""
    staff_name: str = ""
    started: float | None = None
    ended: float | None = None
    started_written: bool = False
    outcome_written: bool = False
    peers: dict[Side, Peer] = field(default_factory=dict)
    pending: dict[Side, deque[dict[str, Any]]] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        """Not ended or failed."""
        return self.state not in (CallState.ENDED, CallState.FAILED)

    @property
    def duration_s(self) -> int:
        """Seconds from acceptance to the end (or now)."""
        if self.started is None:
            return 0
        return max(0, round((self.ended or time.time()) - self.started))

    def summary(self) -> dict[str, Any]:
        """What the console's queue and the kiosk see of the call."""
        return {
            "id": self.id,
            "case_id": self.case_id,
            "case_number": self.case_number,
            "item_name": self.item_name,
            "village": self.village,
            "state": self.state.value,
            "state_label": self.state.label,
            "staff_name": self.staff_name,
            "waiting_s": max(0, round(time.time() - self.created)),
        }


class VideoDesk:
    """The calls and available staff of one node process, and its call tokens."""

    def __init__(self, settings: TownshipSettings) -> None:
        self.secret = hashlib.sha256(b"sanji-video:" + settings.secret_key).digest()
        self.token_ttl = settings.video_token_ttl
        self.ice_servers = list(settings.ice_servers)
        self.calls: dict[str, Call] = {}
        self.available: dict[str, str] = {}
        """Username → name of the staff marked available for video."""
        self._lock = threading.Lock()

    # -- tokens ---------------------------------------------------------------------------

    def token(self, call_id: str, side: Side, now: float | None = None) -> str:
        """A token admitting ``side`` to ``call_id`` for ``token_ttl`` seconds."""
        expires = int((now or time.time()) + self.token_ttl)
        body = f"{call_id}.{side.value}.{expires}"
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        mac = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check_token(self, token: str, call_id: str, now: float | None = None) -> Side:
        """The side ``token`` admits to ``call_id``; raise TokenRefused otherwise."""
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 4:
            raise TokenRefused("通话凭证格式不正确")
        body, signature = ".".join(parts[:3]), parts[3]
        if not hmac.compare_digest(self._sign(body), signature):
            raise TokenRefused("通话凭证无效")
        if parts[0] != call_id:
            raise TokenRefused("通话凭证不属于这次通话")
        try:
            side, expires = Side(parts[1]), int(parts[2])
        except ValueError:
            raise TokenRefused("通话凭证格式不正确") from None
        if (now or time.time()) > expires:
            raise TokenRefused("通话凭证已过期")
        return side

    # -- calls ----------------------------------------------------------------------------

    def place(self, village: str, case_id: str, case_number: str, item_name: str) -> Call:
        """A new waiting call from ``village``'s kiosk on a case of that village."""
        self._forget_old()
        call = Call(
            id=secrets.token_urlsafe(12),
            case_id=case_id,
            case_number=case_number[:40],
            item_name=item_name[:100],
            village=village,
            created=time.time(),
        )
        with self._lock:
            self.calls[call.id] = call
        return call

    def get(self, call_id: str) -> Call:
        """The call ``call_id``, or NotFound."""
        call = self.calls.get(call_id)
        if call is None:
            raise NotFound("视频通话", call_id, "没有这个视频通话（可能已结束）")
        return call

    def waiting(self) -> list[Call]:
        """Calls not over, oldest first."""
        self._forget_old()
        return sorted((c for c in self.calls.values() if c.open), key=lambda c: c.created)

    def accept(self, call_id: str, staff: str, staff_name: str) -> Call:
        """``staff`` takes a waiting call (or comes back to their own)."""
        with self._lock:
            call = self.get(call_id)
            if not call.open:
                raise CallRefused(f"这次通话{call.state.label}")
            if call.state is not CallState.WAITING and call.staff != staff:
                raise CallRefused(f"这次通话已由{call.staff_name or call.staff}接听")
            if call.state is CallState.WAITING:
                call.state, call.staff, call.staff_name = CallState.CONNECTING, staff, staff_name
                call.started = time.time()
        self.broadcast(call)
        return call

    def finish(self, call: Call, failed: bool = False) -> None:
        """The call is over: ended (or failed before anyone answered or connected)."""
        if not call.open:
            return
        call.state = CallState.FAILED if failed else CallState.ENDED
        call.ended = time.time()
        self.broadcast(call)

    def set_available(self, staff: str, name: str, available: bool) -> None:
        """Mark a staff member available for video, or not."""
        if available:
            self.available[staff] = name
        else:
            self.available.pop(staff, None)

    def _forget_old(self) -> None:
        """Drop calls ended a while ago, and fail calls still ringing long after any kiosk
        would have given up on them (a kiosk page closed without hanging up)."""
        now = time.time()
        with self._lock:
            for call_id, call in list(self.calls.items()):
                if not call.open and call.ended is not None and now - call.ended > KEEP_ENDED:
                    del self.calls[call_id]
            abandoned = [
                c for c in self.calls.values()
                if c.state is CallState.WAITING and now - c.created > RING_LIMIT
            ]  # fmt: skip
        for call in abandoned:
            self.finish(call, failed=True)

    # -- signalling -----------------------------------------------------------------------

    def join(self, call: Call, side: Side, peer: Peer) -> None:
        """``peer`` is ``side`` of ``call`` now (a newer connection replaces an older one)."""
        old = call.peers.get(side)
        call.peers[side] = peer
        if old is not None and old is not peer:
            old.close()
        peer.send(self._state_message(call))
        for message in call.pending.pop(side, deque()):
            peer.send(message)
        if side is Side.STAFF and call.state is CallState.CONNECTING:
            self._deliver(call, Side.KIOSK, {"type": "ready"})

    def leave(self, call: Call, side: Side, peer: Peer) -> None:
        """``peer`` disconnected; the call goes on (a page may reload) until hung up."""
        if call.peers.get(side) is peer:
            del call.peers[side]

    def relay(self, call: Call, side: Side, message: Any) -> None:
        """Pass one signalling message of ``side`` to the other side; raise on anything else."""
        if not isinstance(message, dict) or message.get("type") not in SIGNALS:
            raise TokenRefused("不支持的信令消息")
        kind = message["type"]
        if len(json.dumps(message)) > MAX_SIGNAL:
            raise TokenRefused("信令消息过大")
        if not call.open:
            return
        if kind == "hangup":
            self.finish(call, failed=side is Side.KIOSK and call.state is CallState.WAITING)
            return
        if kind == "connected":
            if call.state is CallState.CONNECTING:
                call.state = CallState.IN_CALL
                self.broadcast(call)
            return
        if call.state is CallState.WAITING:
            return  # nobody to talk to yet: the kiosk makes its offer on "ready"
        self._deliver(call, side.other, {k: message[k] for k in ("type", "sdp", "candidate")
                                         if k in message})  # fmt: skip

    def broadcast(self, call: Call) -> None:
        """Tell both sides where the call stands."""
        for side in Side:
            self._deliver(call, side, self._state_message(call), keep=False)

    def _state_message(self, call: Call) -> dict[str, Any]:
        return {
            "type": "state",
            "state": call.state.value,
            "label": call.state.label,
            "staff_name": call.staff_name,
        }

    def _deliver(self, call: Call, side: Side, message: dict[str, Any], keep: bool = True) -> None:
        peer = call.peers.get(side)
        if peer is not None:
            peer.send(message)
        elif keep:
            queue = call.pending.setdefault(side, deque(maxlen=PENDING))
            queue.append(message)


# --- the kiosk's credentials ------------------------------------------------------------------


def kiosk_village(settings: TownshipSettings, username: str, password: str) -> str:
    """The village whose kiosk ``username``/``password`` are, asked of this township's CouchDB
    (``GET /_session`` with Basic auth); raise KioskDenied (401 unknown, 403 not ours)."""
    if not username or not password:
        raise KioskDenied("缺少终端凭证", 401)
    url = public_url(settings.couchdb_url) + "_session"
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(
        url, headers={"Authorization": f"Basic {pair}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.couch_timeout) as answer:
            body = json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise KioskDenied("终端凭证不正确", 401) from None
        raise
    context = body.get("userCtx") or {}
    if not context.get("name"):
        raise KioskDenied("终端凭证不正确", 401)
    villages = [
        r.split(":", 1)[1] for r in context.get("roles") or [] if str(r).startswith("village:")
    ]
    ours = [
        v
        for v in villages
        if level_of(settings.code) is Level.TOWNSHIP
        and _is_village(v)
        and township_of(v) == settings.code
    ]
    if len(ours) != 1:
        raise KioskDenied("该终端不属于本镇街", 403)
    return ours[0]


def _is_village(code: str) -> bool:
    try:
        return level_of(code) is Level.VILLAGE
    except InvalidInput:
        return False


# --- the record on the case -------------------------------------------------------------------


def record(state: Any, call: Call, outcome: VideoOutcome | None = None, note: str = "") -> None:
    """Write what the call came to on its case with the node's writer: ``video_started`` once
    it was accepted, ``video_ended`` with ``outcome``; the read model caught up after."""
    payloads: list[EventPayload] = []
    if not call.started_written and call.staff:
        payloads.append(VideoStarted(call_id=call.id, staff=call.staff, staff_name=call.staff_name))
    if outcome is not None and not call.outcome_written:
        payloads.append(
            VideoEnded(call_id=call.id, duration_s=call.duration_s, outcome=outcome, note=note)
        )
    if not payloads:
        return
    snap = CaseActions(state).snapshot(call.case_id)
    allowed = allowed_kinds(snap.state.status)
    refused = [p.kind.label for p in payloads if p.kind not in allowed]
    if refused:
        raise CallRefused(f"办件目前为“{snap.state.status.label}”，不能记录{'、'.join(refused)}")
    written: list[CaseEvent] = state.writer.append(
        state.couch()[state.settings.case_database],
        snap.case,
        payloads,
        author=call.staff,
        after=snap.state.last_stamp,
    )
    kinds = {e.kind.value for e in written}
    call.started_written = call.started_written or "video_started" in kinds
    call.outcome_written = call.outcome_written or "video_ended" in kinds
    refresh(state)


def check_case(state: Any, village: str, case_id: str) -> None:
    """Raise InvalidInput unless ``case_id`` is a case of ``village``: as this township's case
    database holds it, or (not synced up yet) one the village's kiosk opened."""
    try:
        origin, _ = parse_case_id(case_id)
    except ValueError:
        raise InvalidInput(FieldError("case_id", "办件编号有误", "Not a case id")) from None
    with couch_errors():
        doc = get_document(state.couch()[state.settings.case_database], case_id)
    held = doc.get("village") if doc is not None else origin.unit
    if held != village:
        raise InvalidInput(FieldError("case_id", "不是本村的办件", "Not a case of the village"))
