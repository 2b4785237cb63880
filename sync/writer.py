"""Writing case documents at a server: numbered and stamped with the server as their origin.

A township node (or the district server) is an origin like a kiosk (``<unit>:<instance>``); its
counter and hybrid logical clock live in the ``writers`` table of its SQL database (each app's
migrations create it from ``metadata`` here). One SQL transaction takes the next counters: it
first bumps the counter (an UPDATE, which locks the row on PostgreSQL and the database on
SQLite), so two requests at once can never get the same numbers. The events then go to the
unit's case database in CouchDB in one ``_bulk_docs``; a failed write leaves a gap in the
numbers, never a reused one. An event is acknowledged only once CouchDB has it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, MetaData, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from core.cases import (
    Case,
    CaseEvent,
    EventPayload,
    Origin,
    case_to_doc,
    event_to_doc,
    new_event,
    new_instance_id,
)
from core.clock import Hlc, HlcClock
from sync.couch import couch_errors
from sync.errors import SyncError
from sync.readmodel import NAMING

__all__ = ["EventWriter", "EventsNotSaved", "Writer", "metadata"]


class _Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


metadata = _Base.metadata
"""The ``writers`` table, for the apps' Alembic environments."""


class Writer(_Base):
    """A server as an origin of case documents: its instance id, the last counter it used and
    its hybrid logical clock (one row per unit the server writes for)."""

    __tablename__ = "writers"
    unit: Mapped[str] = mapped_column(String(12), primary_key=True)
    instance: Mapped[str] = mapped_column(String(16))
    counter: Mapped[int] = mapped_column(Integer)
    hlc: Mapped[str] = mapped_column(String(80))
    """The last stamp issued, encoded (empty before the first)."""


class EventsNotSaved(SyncError):
    """CouchDB did not take every event (nothing acknowledged; the numbers are skipped)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class EventWriter:
    """Writes case documents as ``unit``'s server."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        unit: str,
        now_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.sessions = sessions
        self.unit = unit
        self.now_ms = now_ms

    def origin(self) -> Origin:
        """This node as an origin (its instance id is minted on first use and kept)."""
        with self.sessions() as session:
            found = session.get(Writer, self.unit)
            if found is not None:
                return Origin(self.unit, found.instance)
            session.add(Writer(unit=self.unit, instance=new_instance_id(), counter=0, hlc=""))
            try:
                session.commit()
            except IntegrityError:  # another request minted it first
                session.rollback()
            found = session.get(Writer, self.unit)
            assert found is not None
            return Origin(self.unit, found.instance)

    def _numbers(self, count: int, after: Hlc | None) -> tuple[Origin, list[int], list[Hlc]]:
        """The next ``count`` counters and stamps (after ``after``), taken in one transaction."""
        origin = self.origin()
        with self.sessions.begin() as session:
            mine = Writer.unit == self.unit
            session.execute(update(Writer).where(mine).values(counter=Writer.counter + count))
            row = session.execute(select(Writer).where(mine)).scalar_one()
            first = row.counter - count + 1
            clock = HlcClock(origin.key, self.now_ms, last=Hlc.parse(row.hlc) if row.hlc else None)
            stamps: list[Hlc] = []
            for _ in range(count):
                stamps.append(clock.tick(after=stamps[-1] if stamps else after))
            row.hlc = clock.last.encode()
        return origin, list(range(first, first + count)), stamps

    def append(
        self,
        database: Any,
        case: Case,
        payloads: Sequence[EventPayload],
        *,
        author: str,
        after: Hlc | None = None,
        wall_time: datetime | None = None,
    ) -> list[CaseEvent]:
        """Write ``payloads`` as events on ``case`` in this order (stamped after ``after``, the
        case's latest stamp); raise InvalidInput for a bad payload (nothing written) or
        EventsNotSaved / a SyncError when CouchDB did not take them."""
        origin, counters, stamps = self._numbers(len(payloads), after)
        events = self._events(case, payloads, origin, counters, stamps, author, wall_time)
        self._save(database, [event_to_doc(e) for e in events])
        return events

    def open_case(
        self,
        database: Any,
        build_case: Callable[[Origin, int, Hlc, datetime], Case],
        payloads: Sequence[EventPayload],
        *,
        author: str,
    ) -> tuple[Case, list[CaseEvent]]:
        """Write a new case (``build_case(origin, counter, stamp, wall_time)``, e.g. from the
        counter's intake) and its first events (``submitted``…) in one ``_bulk_docs``, all
        numbered as this node; raise InvalidInput from ``build_case`` or a bad payload (nothing
        written) or EventsNotSaved / a SyncError when CouchDB did not take them."""
        origin, counters, stamps = self._numbers(1 + len(payloads), None)
        now = datetime.now(UTC)
        case = build_case(origin, counters[0], stamps[0], now)
        events = self._events(case, payloads, origin, counters[1:], stamps[1:], author, now)
        self._save(database, [case_to_doc(case), *(event_to_doc(e) for e in events)])
        return case, events

    @staticmethod
    def _events(
        case: Case,
        payloads: Sequence[EventPayload],
        origin: Origin,
        counters: Sequence[int],
        stamps: Sequence[Hlc],
        author: str,
        wall_time: datetime | None,
    ) -> list[CaseEvent]:
        now = wall_time or datetime.now(UTC)
        return [
            new_event(
                case,
                payload,
                origin=origin,
                counter=counter,
                hlc=stamp,
                wall_time=now,
                author=author,
            )  # fmt: skip
            for payload, counter, stamp in zip(payloads, counters, stamps, strict=True)
        ]

    @staticmethod
    def _save(database: Any, docs: list[dict[str, Any]]) -> None:
        """One ``_bulk_docs``; every document must be taken."""
        with couch_errors():
            results = database.update(docs)
        failed = [doc_id for ok, doc_id, _ in results if not ok]
        if failed:
            raise EventsNotSaved(f"CouchDB did not save {len(failed)} document(s): {failed[:3]}")
