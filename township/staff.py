"""Who may work a township's console: staff accounts from the replicated ``directory``.

Accounts are written only at the district (SQL is the truth) and reach the township as
``account:<username>`` documents. A township's console admits its own staff and head of
centre; the district's service centre (the same app run with the district's code) admits
the district's administrators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.hierarchy import Level, level_of
from core.roles import Role
from sync.couch import couch_errors, get_document

__all__ = ["DIRECTORY_DB", "Staff", "find_staff", "authenticate", "console_roles"]

DIRECTORY_DB = "directory"
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class Staff:
    """A person logged in to the console."""

    username: str
    display_name: str
    role: Role
    unit: str

    @property
    def is_head(self) -> bool:
        """Head of the centre (or a district administrator at the district's centre)."""
        return self.role in (Role.TOWNSHIP_HEAD, Role.DISTRICT_ADMIN)


def console_roles(unit: str) -> frozenset[Role]:
    """The roles admitted to the console of ``unit`` (a township or the district)."""
    if level_of(unit) is Level.DISTRICT:
        return frozenset({Role.DISTRICT_ADMIN})
    return frozenset({Role.TOWNSHIP_STAFF, Role.TOWNSHIP_HEAD})


def find_staff(server: Any, unit: str, username: str) -> tuple[Staff, str] | None:
    """The enabled console account ``username`` of ``unit`` and its password hash."""
    username = username.strip().lower()
    if not username:
        return None
    with couch_errors():
        doc = get_document(server[DIRECTORY_DB], f"account:{username}")
    if doc is None or doc.get("type") != "account" or doc.get("disabled"):
        return None
    try:
        role = Role(str(doc.get("role")))
    except ValueError:
        return None
    if role not in console_roles(unit) or doc.get("unit") != unit:
        return None
    staff = Staff(username, str(doc.get("display_name") or username), role, unit)
    return staff, str(doc.get("password_hash") or "")


def authenticate(server: Any, unit: str, username: str, password: str) -> Staff | None:
    """The staff member if the password matches (Argon2); unknown names take as long."""
    found = find_staff(server, unit, username)
    try:
        if found is None:
            _hasher.verify(_DUMMY, password + "x")
            return None
        _hasher.verify(found[1], password)
    except (VerificationError, InvalidHashError):
        return None
    return found[0]
