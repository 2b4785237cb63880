"""Who is logged in: the session cookie, the admin guard and the database-session dependency."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from central.db.models import Account
from core.roles import Role

__all__ = [
    "admin_guard",
    "password_guard",
    "PasswordChangeRequired",
    "login_session",
    "session_user",
    "current_username",
]


def login_session(account: Account) -> dict[str, Any]:
    """What the signed session cookie holds about a logged-in user."""
    return {
        "user": account.username,
        "role": account.role,
        "unit": account.unit_code,
        "name": account.display_name,
    }


def session_user(connection: ASGIConnection) -> dict[str, Any] | None:  # type: ignore[type-arg]
    """The logged-in user's session data, if any."""
    data = connection.scope.get("session")
    return data if isinstance(data, dict) and data.get("user") else None


def current_username(connection: ASGIConnection) -> str:  # type: ignore[type-arg]
    """The logged-in user's login name (handlers behind a guard always have one)."""
    user = session_user(connection)
    if user is None:
        raise NotAuthorizedException()
    return str(user["user"])


class PasswordChangeRequired(NotAuthorizedException):
    """The account's password was reset: it must be changed before anything else."""


def _admin(connection: ASGIConnection) -> Account:  # type: ignore[type-arg]
    user = session_user(connection)
    if user is None:
        raise NotAuthorizedException()
    with connection.app.state.sessions() as session:
        account = session.get(Account, user["user"])
    if account is None or account.disabled:
        connection.scope["session"] = {}
        raise NotAuthorizedException()
    if account.role != Role.DISTRICT_ADMIN.value:
        raise PermissionDeniedException()
    return account


def admin_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Allow only enabled district administrators; a disabled account loses its session at once."""
    if _admin(connection).must_change_password:
        raise PasswordChangeRequired()


def password_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Allow an administrator who may still have to change a reset password."""
    _admin(connection)
