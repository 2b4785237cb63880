"""What every console page works with: the staff member's session, the guard, page rendering,
and the pages for logging in and out."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

from litestar import Request, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from core.hierarchy import Level, level_of
from core.identity import mask_resident_id
from core.roles import Role
from township.settings import TownshipSettings
from township.staff import authenticate, find_staff

__all__ = [
    "ROUTES",
    "LoginRequired",
    "flash",
    "page",
    "safe_target",
    "session_user",
    "staff_guard",
]


class LoginRequired(NotAuthorizedException):
    """No session, or it timed out (``expired``): the login page, then back here."""

    def __init__(self, expired: bool = False) -> None:
        super().__init__()
        self.expired = expired


def session_user(connection: ASGIConnection) -> dict[str, Any] | None:  # type: ignore[type-arg]
    """The logged-in staff member's session data, if any."""
    data = connection.scope.get("session")
    return data if isinstance(data, dict) and data.get("user") else None


def staff_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """A staff member of this unit is logged in, active within the idle limit, still enabled
    (checked against the replicated directory at most once a minute)."""
    settings: TownshipSettings = connection.app.state.settings
    user = session_user(connection)
    if user is None:
        raise LoginRequired()
    now = time.time()
    if now - float(user.get("seen") or 0) > settings.session_idle:
        connection.scope["session"] = {}
        raise LoginRequired(expired=True)
    if now - float(user.get("checked") or 0) > 60:
        if find_staff(connection.app.state.couch(), settings.code, user["user"]) is None:
            connection.scope["session"] = {}
            raise LoginRequired()
        user["checked"] = now
    user["seen"] = now


def flash(request: Request, message: str, kind: str = "ok") -> None:  # type: ignore[type-arg]
    """Leave a message for the next page the staff member sees."""
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def unit_label(code: str) -> str:
    """How the console names its unit in the header."""
    return "区级政务服务中心" if level_of(code) is Level.DISTRICT else "镇街便民服务中心"


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> Template:  # type: ignore[type-arg]
    """Render a console page with the header's context."""
    settings: TownshipSettings = request.app.state.settings
    session = request.scope.get("session")
    messages = session.pop("flash", []) if isinstance(session, dict) else []
    return Template(
        name,
        context={
            "user": session_user(request),
            "unit": settings.code,
            "unit_label": unit_label(settings.code),
            "messages": messages,
            "mask_id": mask_resident_id,
            **context,
        },
        status_code=status_code,
    )


def safe_target(target: str) -> str:
    """A local path to go back to (never another site)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@get("/")
async def home() -> Redirect:
    """The inbox is the console's front page."""
    return Redirect("/inbox")


@get("/login")
async def login_form(
    request: Request,  # type: ignore[type-arg]
    next: FromQuery[str] = "/inbox",  # noqa: A002
    expired: FromQuery[bool] = False,
) -> Template:
    """The login page."""
    return page(request, "login.html", next=safe_target(next), expired=expired, failed=False)


@post("/login")
async def login(request: Request) -> Template | Redirect:  # type: ignore[type-arg]
    """Check the staff member against the replicated directory and open a session."""
    settings: TownshipSettings = request.app.state.settings
    form = await request.form()
    username = str(form.get("username", "")).strip()
    target = safe_target(str(form.get("next", "/inbox")))
    staff = await asyncio.to_thread(
        authenticate, request.app.state.couch(), settings.code, username,
        str(form.get("password", "")),
    )  # fmt: skip
    if staff is None:
        return page(request, "login.html", status_code=400, next=target, expired=False,
                    failed=True, username=username)  # fmt: skip
    now = time.time()
    request.set_session({
        "user": staff.username, "name": staff.display_name, "role": staff.role.value,
        "head": staff.is_head, "seen": now, "checked": now,
    })  # fmt: skip
    return Redirect(target)


@post("/logout")
async def logout(request: Request) -> Redirect:  # type: ignore[type-arg]
    """End the session."""
    request.clear_session()
    return Redirect("/login")


@get("/lang/{lang:str}")
async def set_language(lang: FromPath[str], back: FromQuery[str] = "/") -> Redirect:
    """Switch between Chinese and English (a cookie)."""
    response = Redirect(safe_target(back))
    response.set_cookie("lang", "en" if lang == "en" else "zh", max_age=365 * 24 * 3600)
    return response


def login_redirect(path: str, expired: bool) -> Redirect:
    """Where an unauthenticated page request goes."""
    target = "/login?next=" + quote(path)
    return Redirect(target + ("&expired=true" if expired else ""))


ROUTES = [home, login_form, login, logout, set_language]

# Roles shown on the header: the label of the logged-in role.
ROLE_LABELS = {r.value: r.label for r in Role}
