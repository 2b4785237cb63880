"""Bring CouchDB back in line with the district's SQL truth (after it lost data or drifted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db.models import Account, KioskRegistration, TownshipNode, Unit
from central.services.directory import (
    DIRECTORY,
    SETTINGS,
    account_doc,
    registration_doc,
    settings_doc,
    township_node_doc,
    unit_doc,
)
from central.services.district_settings import settings_document
from sync.couch import ensure_database, get_document, save_document

__all__ = ["resync_directory"]

_VOLATILE = {"_rev", "updated_at"}


def _expected(session: Session) -> Iterator[tuple[str, dict[str, Any]]]:
    for unit in session.scalars(select(Unit).order_by(Unit.code)):
        yield DIRECTORY, unit_doc(unit)
    for account in session.scalars(select(Account).order_by(Account.username)):
        yield DIRECTORY, account_doc(account)
    for reg in session.scalars(select(KioskRegistration).order_by(KioskRegistration.id)):
        yield DIRECTORY, registration_doc(reg)
    for node in session.scalars(select(TownshipNode).order_by(TownshipNode.code)):
        yield DIRECTORY, township_node_doc(node)
    yield SETTINGS, settings_doc(settings_document(session))


def resync_directory(session: Session, server: Any) -> int:
    """Write every directory and settings document CouchDB lacks or holds differently.

    Documents that already match (apart from their revision and time stamp) are left alone, so
    a resync of a healthy server writes nothing and replicates nothing. Returns how many it wrote.
    """
    written = 0
    databases = {name: ensure_database(server, name) for name in (DIRECTORY, SETTINGS)}
    for name, doc in _expected(session):
        current = get_document(databases[name], doc["_id"])
        if current is None or _comparable(current) != _comparable(doc):
            save_document(databases[name], doc)
            written += 1
    return written


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in _VOLATILE}
