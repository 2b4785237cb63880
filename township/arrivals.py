"""Cases arriving at the node: each new case this unit handles gets a ``received`` event,
written with the node's own clock (kiosk clocks are wrong), which starts the five working days
after which a case neither accepted nor returned counts as accepted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.cases import Received, case_from_doc
from core.clock import DAY_MS
from core.fold import CaseState, CaseStatus
from sync.readmodel import CaseDoc, CaseRow
from sync.writer import EventWriter

__all__ = ["receive_new_cases", "RECEIVER"]

RECEIVER = "node"
"""The author of ``received`` events: the node itself, not a person."""
BATCH = 200


def receive_new_cases(sessions: sessionmaker[Session], database: Any, writer: EventWriter) -> int:
    """Write ``received`` on every submitted case the unit handles that it has not received
    yet (at most ``BATCH`` per call); return how many."""
    with sessions() as session:
        found = session.execute(
            select(CaseDoc.doc, CaseRow.state)
            .join(CaseRow, CaseRow.case_id == CaseDoc.case_id)
            .where(
                CaseRow.handling_unit == writer.unit,
                CaseRow.status == CaseStatus.SUBMITTED.value,
                CaseRow.received_on.is_(None),
            )
            .order_by(CaseRow.opened_at)
            .limit(BATCH)
        ).all()
    for doc, state_json in found:
        case = case_from_doc(doc)
        state = msgspec.convert(state_json, CaseState, strict=False)
        now = datetime.now(UTC)
        sent = state.last_stamp
        skew = sent.wall_ms - int(now.timestamp() * 1000)
        writer.append(
            database,
            case,
            [
                Received(
                    receiver=writer.unit,
                    received_at=now,
                    sender=sent.node,
                    sender_skew_ms=skew,
                    skew_clamped=skew > DAY_MS,
                )
            ],
            author=RECEIVER,
            after=sent,
            wall_time=now,
        )
    return len(found)
