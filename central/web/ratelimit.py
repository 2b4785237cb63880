"""Rate limiting of the citizens' POST routes per client address (issue 6 item 9).

A sliding window in this process's memory: each client address may post ``limit`` times in
any ``window`` seconds to the public pages (``/visit…``, ``/progress``) and the Open311 API.
Over the limit it gets 429 with ``Retry-After`` and a plain Chinese page (a GeoReport error
list on ``/open311/``). Limits are per server process and start afresh on a restart — enough
to blunt a flood from one address; several processes behind a balancer would need a shared
store. The client address is the socket's peer: behind a reverse proxy, make the proxy pass
the real address (e.g. uvicorn's ``--proxy-headers``), or every citizen shares one window.

The same middleware refuses a public post whose body is larger than ``MAX_PUBLIC_BODY``
(413), before any handler reads it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from html import escape

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

__all__ = ["SlidingWindow", "PublicPostLimit", "PUBLIC_PREFIXES", "MAX_PUBLIC_BODY"]

PUBLIC_PREFIXES = ("/visit", "/progress", "/open311/")
"""The public routes whose POSTs are limited."""
MAX_PUBLIC_BODY = 16 * 1024
"""The largest public form or Open311 post, in bytes."""
_TOO_MANY = "操作太频繁了, 请过几分钟再试。"
_TOO_BIG = "提交的内容太长了, 请删减后再提交。"


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds (thread-safe, in memory)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float:
        """Count a hit for ``key``; 0 if allowed, else the seconds until the next is allowed."""
        now = self.clock()
        with self._lock:
            if len(self._hits) > 10_000:
                self._forget(now)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window - now, 0.001)
            hits.append(now)
            return 0.0

    def _forget(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]


def _public_post(scope: Scope) -> bool:
    path = str(scope.get("path", ""))
    return scope.get("method") == "POST" and path.startswith(PUBLIC_PREFIXES)


async def _refuse(scope: Scope, send: Send, status: int, message: str, retry: float) -> None:
    path = str(scope.get("path", ""))
    headers: list[tuple[bytes, bytes]] = []
    if path.startswith("/open311/"):
        if path.endswith(".xml"):
            body = (
                '<?xml version="1.0" encoding="utf-8"?>\n<errors><error>'
                f"<code>{status}</code><description>{escape(message)}</description>"
                "</error></errors>"
            ).encode()
            headers.append((b"content-type", b"text/xml; charset=utf-8"))
        else:
            body = json.dumps([{"code": status, "description": message}]).encode()
            headers.append((b"content-type", b"application/json"))
    else:
        body = (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>请稍后再试</title></head><body><main><p>{escape(message)}</p>"
            '<p><a href="/visit">返回</a></p></main></body></html>'
        ).encode()
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    if retry:
        headers.append((b"retry-after", str(math.ceil(retry)).encode()))
    headers.append((b"content-length", str(len(body)).encode()))
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


class PublicPostLimit(ASGIMiddleware):
    """Limits the public POSTs per client address (``app.state.public_limiter``) and size."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Refuse a public post over the rate or size limit; pass everything else on."""
        if not _public_post(scope):
            await next_app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_PUBLIC_BODY:
            await _refuse(scope, send, 413, _TOO_BIG, 0)
            return
        limiter: SlidingWindow | None = getattr(scope["app"].state, "public_limiter", None)
        client = scope.get("client")
        if limiter is not None:
            wait = limiter.hit(str(client[0]) if client else "?")
            if wait:
                await _refuse(scope, send, 429, _TOO_MANY, wait)
                return
        await next_app(scope, receive, send)
