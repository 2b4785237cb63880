"""The township node: its Litestar app (kiosk enrolment now; the staff console grows here)."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig

from sync.sql import make_engine, make_sessionmaker
from township.settings import TownshipSettings
from township.web import enrolment
from township.web.errors import exception_handlers

__all__ = ["create_app"]


@get("/healthz", sync_to_thread=False)
def healthz(state: State) -> dict[str, str]:
    """The node answers, and says which township it serves."""
    return {"status": "ok", "township": state.settings.code}


def create_app(settings: TownshipSettings) -> Litestar:
    """Assemble the township node for ``settings`` (its schema at ``alembic upgrade head``)."""
    engine = make_engine(settings.database_url)

    def dispose() -> None:
        engine.dispose()

    return Litestar(
        route_handlers=[healthz, *enrolment.handlers],
        state=State(
            {
                "settings": settings,
                "engine": engine,
                "sessions": make_sessionmaker(engine),
                "enrolment": enrolment.KioskEnrolment(settings),
            }
        ),
        openapi_config=OpenAPIConfig(
            title=f"Sanji township node {settings.code}", version="1", path="/api/v1/schema"
        ),
        exception_handlers=exception_handlers,
        on_shutdown=[dispose],
        request_max_body_size=64 * 1024,
        debug=settings.debug,
    )
