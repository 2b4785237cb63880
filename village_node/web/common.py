"""What every page of the kiosk works with: the kiosk's parts, the agent's session, page helpers."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Template

from core.catalogue import CaseType, HandlingLevel, Kind, MaterialForm, Mode
from core.identity import mask_resident_id
from sync.store import SQLiteStore
from village_node.agents import find_agent
from village_node.cases import CaseDesk
from village_node.catalogue import KioskCatalogue
from village_node.settings import Enrolment, Settings, load_enrolment
from village_node.syncing import Syncer

__all__ = [
    "Kiosk",
    "LoginRequired",
    "agent_guard",
    "flash",
    "form_dict",
    "kiosk_of",
    "page",
    "safe_target",
    "case_row",
    "session_user",
]


class Kiosk:
    """What every request works with: settings, the store, the catalogue and the syncer."""

    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.store = SQLiteStore(settings.store_path, "kiosk")
        self.catalogue = KioskCatalogue(self.store)
        self.syncer = Syncer(settings, self.store)
        self.desk = CaseDesk(self.store)

    @property
    def enrolment(self) -> Enrolment | None:
        """The saved enrolment (read each time: it is a small file)."""
        return load_enrolment(self.settings)


def kiosk_of(connection: ASGIConnection) -> Kiosk:  # type: ignore[type-arg]
    return connection.app.state.kiosk  # type: ignore[no-any-return]


# --- sessions --------------------------------------------------------------------------------


def session_user(connection: ASGIConnection) -> dict[str, Any] | None:  # type: ignore[type-arg]
    """The logged-in agent's session data, if any."""
    data = connection.scope.get("session")
    return data if isinstance(data, dict) and data.get("user") else None


class LoginRequired(NotAuthorizedException):
    """No session, or it timed out (``expired``)."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__()
        self.expired = expired


def agent_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """An agent of this village is logged in, active within the idle timeout, still enabled."""
    kiosk = kiosk_of(connection)
    user = session_user(connection)
    if user is None:
        raise LoginRequired()
    now = time.time()
    enrolment = kiosk.enrolment
    idle = now - float(user.get("seen") or 0) > kiosk.settings.session_idle
    if (
        idle
        or enrolment is None
        or find_agent(kiosk.store, enrolment.village, user["user"]) is None
    ):
        connection.scope["session"] = {}
        raise LoginRequired(expired=idle)
    user["seen"] = now


# --- page helpers ----------------------------------------------------------------------------


def flash(request: Request, message: str, kind: str = "ok") -> None:  # type: ignore[type-arg]
    """Leave a message for the next page the agent sees."""
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:  # type: ignore[type-arg]
    """Render a page with the header's context: village, sync state, agent, messages."""
    kiosk = kiosk_of(request)
    session = request.scope.get("session")
    messages = session.pop("flash", []) if isinstance(session, dict) else []
    state = kiosk.syncer.state()
    view = kiosk.catalogue.current()
    return Template(
        name,
        context={
            "user": session_user(request),
            "messages": messages,
            "enrolment": kiosk.enrolment,
            "sync": state,
            "waiting": kiosk.syncer.waiting(state),
            "syncing": kiosk.syncer.busy,
            "progress": kiosk.syncer.progress,
            "catalogue_version": view.version if view is not None else None,
            "Kind": Kind,
            "Mode": Mode,
            "HandlingLevel": HandlingLevel,
            "CaseType": CaseType,
            "MaterialForm": MaterialForm,
            "mask_id": mask_resident_id,
            **context,
        },
        status_code=status_code,
    )


def safe_target(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def form_dict(request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    """The posted form as a dict of strings (``flags`` as a list)."""
    form = await request.form()
    data: dict[str, Any] = {k: str(v) for k, v in form.items()}
    data["flags"] = [str(f) for f in form.getall("flags")] if "flags" in form else []
    return data


def case_row(request: Request, number: str) -> Any:  # type: ignore[type-arg]
    """This village's case with ``number`` (folded), or 404."""
    kiosk = kiosk_of(request)
    row = kiosk.desk.by_number(number)
    enrolment = kiosk.enrolment
    if row is None or enrolment is None or row.case.village != enrolment.village:
        raise NotFoundException("本机没有这个办件")
    return row
