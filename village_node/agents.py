"""Offline login: the village's agents from the replicated ``account:`` documents in the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sync.errors import DocNotFound
from sync.store import SQLiteStore

__all__ = ["Agent", "find_agent", "authenticate"]

AGENT_ROLE = "village_agent"
_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not-a-real-password")


@dataclass(frozen=True)
class Agent:
    """A village agent who may use this kiosk."""

    username: str
    display_name: str
    village: str


def find_agent(store: SQLiteStore, village: str, username: str) -> tuple[Agent, str] | None:
    """The enabled agent of ``village`` called ``username`` and their password hash."""
    username = username.strip()
    if not username:
        return None
    try:
        doc: dict[str, Any] = store.get(f"account:{username}")
    except DocNotFound:
        return None
    if (
        doc.get("type") != "account"
        or doc.get("role") != AGENT_ROLE
        or doc.get("disabled")
        or village not in (doc.get("village"), doc.get("unit"))
    ):
        return None
    agent = Agent(username, str(doc.get("display_name") or username), village)
    return agent, str(doc.get("password_hash") or "")


def authenticate(store: SQLiteStore, village: str, username: str, password: str) -> Agent | None:
    """The agent if the password matches (Argon2), else None; unknown names take as long."""
    found = find_agent(store, village, username)
    try:
        if found is None:
            _hasher.verify(_DUMMY, password + "x")
            return None
        _hasher.verify(found[1], password)
    except (VerificationError, InvalidHashError):
        return None
    return found[0]
