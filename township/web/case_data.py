"""Reading one case of the unit's inbox from the read model, for the pages that show it."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.exceptions import NotFoundException
from sqlalchemy import select

from core.cases import Case, case_from_doc
from core.fold import CaseState
from sync.readmodel import CaseDoc, CaseRow
from township.inbox import inbox_scope

__all__ = ["load_case"]


def load_case(state: Any, unit: str, number: str) -> tuple[CaseRow, Case, CaseState]:
    """The case numbered ``number`` in ``unit``'s inbox, from the read model, or 404."""
    with state.sessions() as session:
        found = session.execute(
            select(CaseRow, CaseDoc.doc)
            .join(CaseDoc, CaseDoc.case_id == CaseRow.case_id)
            .where(CaseRow.case_number == number.strip(), inbox_scope(unit))
        ).first()
    if found is None:
        raise NotFoundException("没有这个办件, 或它不归本中心办理")
    row, doc = found
    return row, case_from_doc(doc), msgspec.convert(row.state, CaseState, strict=False)
