"""The district server: administration UI, JSON API, Open311 view and the CouchDB writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from litestar import Litestar, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from central.db import make_engine, make_sessionmaker
from central.services import node_health, notifications, outbox
from central.services.bookings import BookingRules, BookingService, TownshipLink
from central.services.read_model import project_district
from central.settings import Settings
from central.web import (
    api,
    dashboard,
    notices,
    open311,
    public,
    public_rating,
    supervision,
    ui,
)
from central.web.errors import exception_handlers
from central.web.i18n import install as install_i18n
from central.web.ratelimit import PublicPostLimit, SlidingWindow
from sync.couch import connect

__all__ = ["create_app"]

log = logging.getLogger(__name__)
WEB = Path(__file__).resolve().parent / "web"
BACKGROUND_INTERVAL = 10.0


class Couch:
    """Where the district's CouchDB is, and a way to reach it."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout

    def server(self):  # type: ignore[no-untyped-def]
        """A couchdb-python server with socket timeouts."""
        return connect(self.url, timeout=self.timeout)


def flush_outbox(state: State) -> int:
    """Write queued directory and settings documents to CouchDB."""
    return outbox.flush(state.sessions, state.couch.server)


def _background(state: State) -> None:
    """What the server does every few seconds: flush the outbox, follow the `district` db,
    reconcile bookings, notify, and now and then ask the township nodes for their replications."""
    for step in (flush_outbox, _project, _reconcile_bookings, _notify, _check_nodes):
        try:
            step(state)
        except Exception:  # keep going; one failing step must not stop the loop
            log.exception("background step %s failed", step.__name__)


def _project(state: State) -> None:
    project_district(state.sessions, state.couch.server())


def _reconcile_bookings(state: State) -> None:
    """Follow the township's answers to requested bookings (they arrive by replication)."""
    state.bookings.reconcile()


def _notify(state: State) -> None:
    """Queue due reminders and result notices (each once, by constraint), then send."""
    notifications.enqueue_reminders(state.sessions, state.bookings.now())
    notifications.enqueue_results(state.sessions)
    notifications.send_pending(state.sessions, state.sender)


def _check_nodes(state: State) -> None:
    """Ask the township nodes for their replications, at most every ``node_check_seconds``
    (and at once when a node was registered that was never asked)."""
    every = state.settings.node_check_seconds
    last: float | None = state.get("nodes_checked")
    if every <= 0:
        return
    if last is not None and time.monotonic() - last < every:
        with state.sessions() as session:
            if not node_health.unchecked_nodes(session):
                return
    state.nodes_checked = time.monotonic()  # a failing poll waits its turn too
    node_health.check_nodes(state.sessions, state.settings.township_timeout)


WORKER_THREADS = 32
"""Threads for the handlers' blocking work (``asyncio.to_thread``). The default pool has the
cores + 4 (6 here): a few bookings waiting on a slow township took them all and every page,
even a read, queued behind them."""


@contextlib.asynccontextmanager
async def _worker_threads(app: Litestar) -> AsyncIterator[None]:
    pool = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="district")
    asyncio.get_running_loop().set_default_executor(pool)
    yield


@contextlib.asynccontextmanager
async def _background_loop(app: Litestar) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            await asyncio.to_thread(_background, app.state)
            await asyncio.sleep(BACKGROUND_INTERVAL)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        app.state.engine.dispose()


def create_app(settings: Settings) -> Litestar:
    """Assemble the district server for ``settings`` (its schema at ``alembic upgrade head``)."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    couch = Couch(settings.couchdb_url, settings.couch_timeout)
    bookings = BookingService(
        sessions,
        couch.server,
        TownshipLink(timeout=settings.township_timeout),
        BookingRules(settings.booking_window_days, settings.booking_cutoff_minutes),
    )
    session_config = CookieBackendConfig(
        secret=settings.secret_key, max_age=settings.session_max_age, key="sanji_session"
    )
    return Litestar(
        route_handlers=[
            Router("/", route_handlers=ui.handlers, include_in_schema=False),
            Router("/", route_handlers=public.handlers, include_in_schema=False),
            Router("/", route_handlers=public_rating.handlers, include_in_schema=False),
            Router("/", route_handlers=notices.handlers, include_in_schema=False),
            Router("/", route_handlers=supervision.handlers, include_in_schema=False),
            Router("/", route_handlers=dashboard.handlers, include_in_schema=False),
            *api.handlers,
            *open311.handlers,
            create_static_files_router(
                path="/static", directories=[WEB / "static"], include_in_schema=False
            ),
        ],
        state=State(
            {
                "settings": settings,
                "engine": engine,
                "sessions": sessions,
                "couch": couch,
                "bookings": bookings,
                "sender": notifications.LogSender(),
                "public_limiter": SlidingWindow(
                    settings.public_post_limit, settings.public_post_window
                ),
            }
        ),
        middleware=[PublicPostLimit(), session_config.middleware],
        csrf_config=CSRFConfig(
            secret=settings.secret_key.hex(), cookie_name="sanji_csrf", exclude=["/open311"]
        ),
        template_config=TemplateConfig(
            directory=WEB / "templates", engine=JinjaTemplateEngine, engine_callback=install_i18n
        ),
        openapi_config=OpenAPIConfig(
            title="Sanji district API", version="1", path="/api/v1/schema"
        ),
        exception_handlers=exception_handlers,
        lifespan=[_worker_threads, _background_loop],
        request_max_body_size=max(settings.max_template_bytes, settings.max_csv_bytes)
        + 1024 * 1024,
        debug=settings.debug,
    )
