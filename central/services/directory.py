"""The `directory` and `settings` documents the district writes to CouchDB whenever they change."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from central.db.models import Account, KioskRegistration, TownshipNode, Unit
from central.services.outbox import enqueue
from core.hierarchy import township_of

__all__ = [
    "DIRECTORY",
    "SETTINGS",
    "unit_doc",
    "account_doc",
    "registration_doc",
    "settings_doc",
    "township_node_doc",
    "publish_unit",
    "publish_account",
    "publish_registration",
    "publish_settings",
    "publish_township_node",
]

DIRECTORY = "directory"
SETTINGS = "settings"


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _scope(code: str) -> dict[str, str | None]:
    """Township and village of a unit code: the fields replication filters route by."""
    township = township_of(code)
    return {"township": township, "village": code if township and code != township else None}


def unit_doc(unit: Unit) -> dict[str, Any]:
    """The unit's directory document."""
    return {
        "_id": f"unit:{unit.code}",
        "type": "unit",
        "code": unit.code,
        "name": unit.name,
        "level": unit.level,
        "parent": unit.parent_code,
        "demo": unit.demo,
        **_scope(unit.code),
        "updated_at": _stamp(),
    }


def account_doc(account: Account) -> dict[str, Any]:
    """The account's directory document (the password hash only, never a password)."""
    return {
        "_id": f"account:{account.username}",
        "type": "account",
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role,
        "unit": account.unit_code,
        "password_hash": account.password_hash,
        "disabled": account.disabled,
        **_scope(account.unit_code),
        "updated_at": _stamp(),
    }


def registration_doc(reg: KioskRegistration) -> dict[str, Any]:
    """A kiosk registration's directory document (the enrolment code hashed)."""
    return {
        "_id": f"kiosk_registration:{reg.id}",
        "type": "kiosk_registration",
        "registration": reg.id,
        "label": reg.label,
        "code_hash": reg.code_hash,
        "issued_at": reg.issued_at.isoformat(timespec="seconds"),
        "expires_at": reg.expires_at.isoformat(timespec="seconds"),
        "revoked": reg.revoked_at is not None,
        "revoked_at": reg.revoked_at.isoformat(timespec="seconds") if reg.revoked_at else None,
        "revoked_reason": reg.revoked_reason,
        **_scope(reg.village_code),
        "updated_at": _stamp(),
    }


def settings_doc(body: dict[str, Any]) -> dict[str, Any]:
    """The district-wide settings document (calendar and SLA thresholds)."""
    return {"_id": "settings:district", "type": "settings", **body, "updated_at": _stamp()}


def township_node_doc(node: TownshipNode) -> dict[str, Any]:
    """A township node's directory document: its URL and the SHA-256 of its key (never the key)."""
    return {
        "_id": f"township_node:{node.code}",
        "type": "township_node",
        "code": node.code,
        "township": node.code,
        "url": node.url,
        "key_sha256": hashlib.sha256(node.api_key.encode()).hexdigest(),
        "updated_at": _stamp(),
    }


def publish_unit(session: Session, unit: Unit) -> None:
    """Queue the unit's directory document."""
    enqueue(session, DIRECTORY, unit_doc(unit))


def publish_account(session: Session, account: Account) -> None:
    """Queue the account's directory document."""
    enqueue(session, DIRECTORY, account_doc(account))


def publish_registration(session: Session, reg: KioskRegistration) -> None:
    """Queue a kiosk registration's directory document."""
    enqueue(session, DIRECTORY, registration_doc(reg))


def publish_settings(session: Session, body: dict[str, Any]) -> None:
    """Queue the district-wide settings document."""
    enqueue(session, SETTINGS, settings_doc(body))


def publish_township_node(session: Session, node: TownshipNode) -> None:
    """Queue a township node's directory document."""
    enqueue(session, DIRECTORY, township_node_doc(node))
