"""A case transferred to another township continues there as a new linked case.

The transferring centre writes the new case as its own origin (``EventWriter.open_case``: the
case and its ``submitted`` event, numbered by this node), with the other township as
``township`` and no village (villages belong to their own township). The upward filter carries
documents written by a township's origin even when addressed elsewhere, so the case goes up to
the district and down to the township it names (``by_township``), where it arrives like any
other case and is received there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from core.cases import Case, Origin, Submitted, case_id, case_number, local_date
from core.catalogue import HandlingLevel
from core.clock import Hlc
from core.errors import FieldError, InvalidInput
from sync.writer import EventWriter

__all__ = ["open_linked_case"]


def _linked(old: Case, handling_unit: str, township: str, author: str, reason: str) -> Any:
    def build(origin: Origin, counter: int, stamp: Hlc, now: datetime) -> Case:
        try:
            case = msgspec.structs.replace(
                old,
                id=case_id(origin, counter),
                village=None,
                township=township,
                origin=origin,
                author=author,
                wall_time=now,
                counter=counter,
                hlc=stamp.encode(),
                case_number=case_number(origin, counter, local_date(now)),
                handling_unit=handling_unit,
                # Photographed materials stay on the old case (``linked_case`` leads there).
                materials=tuple(msgspec.structs.replace(m, attachments=()) for m in old.materials),
                linked_case=old.id,
                note=f"由 {old.case_number} 移交：{reason}",
            )
            # Constructors skip msgspec's type checks: a round trip applies them.
            checked: Case = msgspec.convert(msgspec.to_builtins(case), Case)
        except (ValueError, TypeError, msgspec.ValidationError) as exc:
            raise InvalidInput(FieldError("case", f"新办件信息有误：{exc}", str(exc))) from exc
        return checked

    return build


def open_linked_case(
    writer: EventWriter,
    database: Any,
    old: Case,
    handling_unit: str,
    township: str,
    author: str,
    reason: str,
) -> Case:
    """Write the new case for ``township`` linked to ``old``, and its ``submitted`` event.

    A district-level item stays with the unit handling it; any other is handled by the
    township it is transferred to."""
    unit = handling_unit if old.handling_level is HandlingLevel.DISTRICT else township
    case, _ = writer.open_case(
        database,
        _linked(old, unit, township, author, reason),
        [Submitted(note=f"由 {old.case_number} 移交")],
        author=author,
    )
    return case
