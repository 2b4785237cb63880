"""The district's read model: every case of the `district` database, projected into SQL, with
the supervision tables (``central.services.district_model``) kept in the same transactions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from central.services.district_model import DistrictExtension
from central.services.district_settings import sla_thresholds, work_calendar
from central.services.enrolments import DISTRICT_DB
from core.calendar import WorkCalendar
from core.sla import SlaThresholds
from sync.projection import ProjectionResult, follow

__all__ = ["project_district"]


def project_district(
    sessions: sessionmaker[Session], server: Any, now: datetime | None = None
) -> ProjectionResult | None:
    """Catch the read model up with the `district` database; None while it cannot be read.
    ``now`` fixes the district time recorded as kiosk statuses' arrival (tests)."""

    def rules() -> tuple[WorkCalendar, SlaThresholds]:
        with sessions() as session:
            return work_calendar(session), sla_thresholds(session)

    return follow(
        server,
        DISTRICT_DB,
        sessions,
        rules,
        "run `sanji district setup`",
        extension=DistrictExtension(now),
    )
