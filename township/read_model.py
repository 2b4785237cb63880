"""A township node's read model: every case of its `township` database, projected into SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.calendar import WorkCalendar, calendar_from_settings
from core.sla import SlaThresholds, thresholds_from_settings
from sync.couch import couch_errors, get_document
from sync.errors import DocNotFound
from sync.projection import ProjectionResult, follow

__all__ = ["TOWNSHIP_DB", "district_rules", "project_township"]

TOWNSHIP_DB = "township"


def district_rules(server: Any) -> tuple[WorkCalendar, SlaThresholds]:
    """The calendar and SLA thresholds from the district's replicated `settings` document."""
    try:
        with couch_errors(every_status=True):
            doc = get_document(server["settings"], "settings:district")
    except DocNotFound:  # no settings database yet: the defaults until it arrives
        doc = None
    if doc is None:
        return WorkCalendar(), SlaThresholds()
    return calendar_from_settings(doc.get("calendar", {})), thresholds_from_settings(
        doc.get("sla", {})
    )


def project_township(
    sessions: sessionmaker[Session], server: Any, database: str = TOWNSHIP_DB
) -> ProjectionResult | None:
    """Catch the read model up with the node's case database (``township``; ``district`` at
    the district's service centre); None while it cannot be read."""
    return follow(
        server, database, sessions, lambda: district_rules(server), "run `sanji township setup`"
    )
