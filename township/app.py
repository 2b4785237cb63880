"""The township node: kiosk enrolment (JSON API) and the staff console (pages), one Litestar app
per township — or, run with the district's code, the district's own service centre."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from litestar import Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.middleware.session.client_side import CookieBackendConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from core.cases import local_date
from sync.couch import connect
from sync.projection import refold_all
from sync.sql import make_engine, make_sessionmaker
from sync.writer import EventWriter
from township.arrivals import receive_new_cases
from township.read_model import district_rules, project_township
from township.settings import TownshipSettings
from township.video import VideoDesk
from township.visits import confirm_requested_visits
from township.web import (
    bookings_api,
    cases,
    console,
    enrolment,
    follow_ups,
    inbox,
    replications_api,
    supervision,
    video,
    visits,
)
from township.web import intake as counter
from township.web.errors import exception_handlers
from township.web.i18n import install as install_i18n

__all__ = ["create_app", "catch_up"]

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


@get("/healthz", sync_to_thread=False)
def healthz(state: State) -> dict[str, str]:
    """The node answers, and says which township it serves."""
    return {"status": "ok", "township": state.settings.code}


def catch_up(state: State) -> None:
    """Project the case database's new changes into the read model, write ``received`` on the
    cases that just arrived, and refold every case once a day (deemed acceptance and colours
    move with the date)."""
    server = state.couch()
    database = state.settings.case_database
    project_township(state.sessions, server, database)
    if receive_new_cases(state.sessions, server[database], state.writer):
        project_township(state.sessions, server, database)
    if confirm_requested_visits(state.sessions, server, database, state.writer):
        project_township(state.sessions, server, database)
    today: date = local_date(datetime.now(UTC))
    if state.get("refolded_on") != today:
        calendar, thresholds = district_rules(server)
        refold_all(state.sessions, calendar, today, thresholds=thresholds)
        state.refolded_on = today


WORKER_THREADS = 32
"""Threads for the handlers' blocking work (``asyncio.to_thread``). The default pool has the
cores + 4 (6 here): a few bookings waiting on a slow township took them all and every page,
even a read, queued behind them."""


@contextlib.asynccontextmanager
async def _worker_threads(app: Litestar) -> AsyncIterator[None]:
    pool = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="township")
    asyncio.get_running_loop().set_default_executor(pool)
    yield


@contextlib.asynccontextmanager
async def _projection(app: Litestar) -> AsyncIterator[None]:
    """Keep the read model caught up while the node runs."""
    every = app.state.settings.project_every

    async def loop() -> None:
        while True:
            try:
                await asyncio.to_thread(catch_up, app.state)
            except Exception:  # keep following; the next round retries
                log.exception("the read model could not catch up")
            await asyncio.sleep(every)

    task = asyncio.create_task(loop()) if every > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app.state.engine.dispose()


def create_app(settings: TownshipSettings) -> Litestar:
    """Assemble the township node for ``settings`` (its schema at ``alembic upgrade head``)."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)

    def couch() -> Any:
        return connect(settings.couchdb_url, timeout=settings.couch_timeout)

    session_config = CookieBackendConfig(
        secret=settings.secret_key,
        max_age=int(settings.session_idle) + 3600,
        key="sanji_township_session",
    )
    return Litestar(
        route_handlers=[
            healthz,
            *enrolment.handlers,
            *console.ROUTES,
            *inbox.ROUTES,
            *cases.ROUTES,
            *counter.ROUTES,
            *visits.ROUTES,
            *supervision.ROUTES,
            *follow_ups.ROUTES,
            *bookings_api.ROUTES,
            *replications_api.ROUTES,
            *video.ROUTES,
            create_static_files_router(
                path="/static", directories=[HERE / "static"], include_in_schema=False
            ),
        ],
        state=State(
            {
                "settings": settings,
                "engine": engine,
                "sessions": sessions,
                "couch": couch,
                "writer": EventWriter(sessions, settings.code),
                "enrolment": enrolment.KioskEnrolment(settings),
                "video": VideoDesk(settings),
            }
        ),
        middleware=[session_config.middleware],
        csrf_config=CSRFConfig(
            secret=settings.secret_key.hex(),
            cookie_name="sanji_township_csrf",
            exclude=["/api/"],  # kiosks post JSON with no session or cookie
        ),
        template_config=TemplateConfig(
            directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=install_i18n
        ),
        openapi_config=OpenAPIConfig(
            title=f"Sanji township node {settings.code}", version="1", path="/api/v1/schema"
        ),
        exception_handlers=exception_handlers,
        lifespan=[_worker_threads, _projection],
        request_max_body_size=64 * 1024,
        debug=settings.debug,
    )
