"""CouchDB documents queued in the SQL transaction that changed them, then written to CouchDB."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import OutboxDoc
from sync.couch import ensure_database, save_document
from sync.errors import SyncError

__all__ = ["enqueue", "flush", "pending_count"]

log = logging.getLogger(__name__)
_one_at_a_time = threading.Lock()


def enqueue(session: Session, database: str, doc: dict[str, Any]) -> None:
    """Queue ``doc`` for ``database``; it reaches CouchDB only if the transaction commits."""
    session.add(
        OutboxDoc(database=database, doc_id=doc["_id"], body=doc, created_at=datetime.now(UTC))
    )


def pending_count(session: Session) -> int:
    """How many documents still wait for CouchDB."""
    return session.scalar(select(func.count(OutboxDoc.id))) or 0


def flush(sessions: sessionmaker, server_factory: Callable[[], Any]) -> int:
    """Write queued documents oldest first, stopping at the first failure; returns how many landed.

    Only the newest queued body of each document matters (each write replaces the whole
    document), so older entries for the same id are dropped once a newer one lands. Flushes run
    one at a time, so an older body can never overwrite a newer one written by a concurrent
    flush. (One server process writes the district's documents; several would need a
    database lock here instead.)
    """
    with _one_at_a_time:
        return _flush(sessions, server_factory)


def _flush(sessions: sessionmaker, server_factory: Callable[[], Any]) -> int:
    written = 0
    with sessions() as session:
        rows = session.scalars(select(OutboxDoc).order_by(OutboxDoc.id)).all()
        if not rows:
            return 0
        newest = {(r.database, r.doc_id): r.id for r in rows}
        current: OutboxDoc | None = None
        try:
            server = server_factory()
            for current in rows:
                if newest[(current.database, current.doc_id)] == current.id:
                    save_document(ensure_database(server, current.database), dict(current.body))
                session.delete(current)
                session.commit()
                written += 1
        except SyncError as exc:
            session.rollback()
            log.warning("CouchDB write deferred: %s", exc)
            if current is not None:
                current.attempts += 1
                current.last_error = str(exc)[:500]
                session.commit()
    return written
