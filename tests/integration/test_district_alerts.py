"""The district's alerts (issue 8 item 6) on the hand-computed two-township fixture, on SQLite
and PostgreSQL: red cases and silent kiosks are named when there are some, nothing when all is
well."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.orm import Session, sessionmaker

from central.services.alerts import alerts
from central.services.district_model import DistrictExtension
from sync.projection import project
from tests.integration.test_district_dashboard import _fixture
from tests.integration.test_district_supervision import _enrolment, _status, _units
from tests.integration.test_projection import CAL, VILLAGE

HEARD = datetime(2026, 12, 1, 8, tzinfo=UTC)


def test_alerts_name_red_cases_and_silent_kiosks(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        _units(session)
        session.commit()
    db = _fixture()
    _enrolment(db, "r-quiet", VILLAGE, "pc-quiet")
    _status(db, "r-quiet", VILLAGE, "pc-quiet", HEARD)
    project(db, sessions, "district", CAL, date(2026, 12, 31), extension=DistrictExtension(HEARD))
    with sessions() as session:
        calm = alerts(session, date(2026, 12, 1), HEARD, silent_hours=24)
        later = alerts(session, date(2026, 12, 31), datetime(2026, 12, 31, tzinfo=UTC), 24)
    assert calm == []
    found = {a.kind: a for a in later}
    assert set(found) == {"red", "silent"}
    assert found["silent"].message.startswith("1 台村终端超过 24 小时没有同步")
    assert found["silent"].link == "/fleet?state=silent"
    assert "件办件已超过承诺时限" in found["red"].message
    assert found["red"].link.startswith("/dashboard/cases?figure=red&from=2000-01-01&to=2026-12-31")
