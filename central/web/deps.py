"""Running blocking database and CouchDB work from async handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Request

from central.services import outbox

__all__ = ["in_db"]

T = TypeVar("T")
log = logging.getLogger(__name__)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def in_db(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:  # type: ignore[type-arg]
    """Run ``fn(session, *args)`` in a worker thread with its own database session.

    After a change (any unsafe method) the queued CouchDB documents are written before the
    answer goes out, so what the user saw acknowledged is already in CouchDB when it can be.
    """
    state = request.app.state

    def work() -> T:
        with state.sessions() as session:
            result = fn(session, *args, **kwargs)
        if request.method not in SAFE_METHODS:
            try:
                outbox.flush(state.sessions, state.couch.server)
            except Exception:  # the change is committed; the outbox loop retries the write
                log.exception("outbox flush after %s %s failed", request.method, request.url.path)
        return result

    return await asyncio.to_thread(work)
