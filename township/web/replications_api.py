"""The node's replications for the district (issue 8, "replications failing"): JSON at
``GET /api/v1/replications``, the district's key in ``Authorization: Bearer`` as for the booking
API. The jobs are this node's CouchDB ``_replicator`` documents as ``sync.status`` sees them,
plus every job ``sync.topology`` would have written for this township and its villages that is
not there (state ``missing``). The answer is kept for ``CACHE_SECONDS`` per process: the district
polls every few minutes, and working out each job's lag reads both ends of every job."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State

from core.hierarchy import Level, level_of
from sync.status import replication_status
from sync.topology import replication_documents, township_villages
from township.bookings import authenticate_district
from township.settings import TownshipSettings

__all__ = ["ReplicationJob", "ReplicationsRead", "ROUTES", "CACHE_SECONDS"]

CACHE_SECONDS = 60.0
STATUS_TIMEOUT = 3.0
"""Seconds per request to a job's endpoint: an unreachable district must not hold the answer
for long (the district gives up after a few seconds)."""
MAX_SCAN = 2000
"""Changes looked at per job to count its lag (then shown as at least that many)."""
MISSING = "复制任务不存在: 请在镇街节点上运行 sanji township setup"


class ReplicationJob(msgspec.Struct, frozen=True):
    """One replication job; ``source`` and ``target`` as ``host:port/db``, no credentials."""

    id: str
    source: str
    target: str
    state: str
    failing: bool
    error: str
    lag: int | None


class ReplicationsRead(msgspec.Struct, frozen=True):
    """This node's replications when it last looked (``checked_at`` in UTC)."""

    township: str
    checked_at: datetime
    jobs: list[ReplicationJob]


_CREDENTIALS = re.compile(r"(?<=://)[^/\s@]+@")


def _redacted(text: str) -> str:
    """``text`` without the ``user:password@`` of any URL in it."""
    return _CREDENTIALS.sub("***@", text)


def _expected_jobs(server: Any, settings: TownshipSettings) -> set[str]:
    """The ``_replicator`` ids ``sync.topology`` writes for this township (none for the
    district's own service centre, which replicates nothing)."""
    if level_of(settings.code) is not Level.TOWNSHIP:
        return set()
    villages = township_villages(server, settings.code)
    # Only the ids are wanted; they do not depend on the URLs.
    return set(replication_documents(settings.code, villages, "http://district/", "http://self/"))


def _report(settings: TownshipSettings, server: Any) -> ReplicationsRead:
    """Look at every job now (blocking: one or more requests per job)."""
    checked_at = datetime.now(UTC)
    rows = replication_status(settings.couchdb_url, max_scan=MAX_SCAN, timeout=STATUS_TIMEOUT)
    jobs = [
        ReplicationJob(r.id, r.source, r.target, r.state, r.failing, _redacted(r.error), r.lag)
        for r in rows
    ]
    present = {r.id for r in rows}
    for missing in sorted(_expected_jobs(server, settings) - present):
        jobs.append(ReplicationJob(missing, "", "", "missing", True, MISSING, None))
    return ReplicationsRead(settings.code, checked_at, jobs)


class _Cache:
    """The last answer and when it was made; one computation at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answer: ReplicationsRead | None = None
        self.made = 0.0

    def get(self, compute: Callable[[], ReplicationsRead], seconds: float) -> ReplicationsRead:
        """The answer made less than ``seconds`` ago, else a new one."""
        with self.lock:  # a second caller waits for the first one's answer
            if self.answer is None or time.monotonic() - self.made >= seconds:
                self.answer = compute()
                self.made = time.monotonic()
            return self.answer


_CACHES_LOCK = threading.Lock()


def _cache(state: State) -> _Cache:
    with _CACHES_LOCK:
        cache: _Cache | None = state.get("replications_cache")
        if cache is None:
            cache = state.replications_cache = _Cache()
        return cache


@get("/api/v1/replications")
async def replications(request: Request) -> ReplicationsRead:  # type: ignore[type-arg]
    """This node's replication jobs: state, failing or not, error and lag (401 without the
    district's key)."""
    state = request.app.state
    authorization = request.headers.get("authorization")

    def run() -> ReplicationsRead:
        settings: TownshipSettings = state.settings
        server = state.couch()
        authenticate_district(server, settings.code, authorization)
        # A test may set ``state.replications_cache_seconds`` (as ``visit_today`` elsewhere).
        seconds = float(state.get("replications_cache_seconds", CACHE_SECONDS))
        return _cache(state).get(lambda: _report(settings, server), seconds)

    return await asyncio.to_thread(run)


ROUTES = [replications]
