"""The district's read model: every case of the `district` database, projected into SQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from central.services.district_settings import sla_thresholds, work_calendar
from central.services.enrolments import DISTRICT_DB
from core.cases import local_date
from sync.errors import CouchUnavailable, DocNotFound
from sync.projection import ProjectionResult, project
from sync.remote import RemoteDatabase

__all__ = ["project_district"]

log = logging.getLogger(__name__)


def project_district(sessions: sessionmaker[Session], server: Any) -> ProjectionResult | None:
    """Catch the read model up with the `district` database; None while it cannot be read."""
    with sessions() as session:
        calendar, thresholds = work_calendar(session), sla_thresholds(session)
    today = local_date(datetime.now(UTC))
    try:
        return project(
            RemoteDatabase(server, DISTRICT_DB),
            sessions,
            DISTRICT_DB,
            calendar,
            today,
            thresholds=thresholds,
        )
    except DocNotFound:
        log.info("no `district` database yet (run `sanji district setup`)")
    except CouchUnavailable as exc:
        log.warning("read model not updated, CouchDB unreachable: %s", exc)
    return None
