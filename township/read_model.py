"""A township node's read model: every case of its `township` database, projected into SQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.calendar import WorkCalendar, calendar_from_settings
from core.cases import local_date
from core.sla import SlaThresholds, thresholds_from_settings
from sync.couch import couch_errors, get_document
from sync.errors import CouchUnavailable, DocNotFound
from sync.projection import ProjectionResult, project
from sync.remote import RemoteDatabase

__all__ = ["TOWNSHIP_DB", "district_rules", "project_township"]

log = logging.getLogger(__name__)
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


def project_township(sessions: sessionmaker[Session], server: Any) -> ProjectionResult | None:
    """Catch the read model up with the `township` database; None while it cannot be read."""
    try:
        calendar, thresholds = district_rules(server)
        return project(
            RemoteDatabase(server, TOWNSHIP_DB),
            sessions,
            TOWNSHIP_DB,
            calendar,
            local_date(datetime.now(UTC)),
            thresholds=thresholds,
        )
    except DocNotFound:
        log.info("no `township` database yet (run `sanji township setup`)")
    except CouchUnavailable as exc:
        log.warning("read model not updated, CouchDB unreachable: %s", exc)
    return None
