"""The demo district's six weeks of case history: written once into a real `district` database
(its validation accepts every document), projected without an error, and giving the dashboard
something to show in each of its figures — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.demo import JINGGUAN, TIANSHENG, demo_history, load_demo
from central.demo.history import write_history
from central.services.dashboard import Figures, Period, figures
from central.services.district_model import DistrictExtension
from core.calendar import WorkCalendar
from sync.couch import connect
from sync.projection import project
from sync.readmodel import CaseRow
from sync.remote import RemoteDatabase
from sync.topology import setup_district
from tests.conftest import CouchUnderTest

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)  # a Friday, 17:30 in the district
TODAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def written(couch_server: CouchUnderTest) -> list[dict[str, object]]:
    """The history, written into the `district` database of a freshly set-up server."""
    setup_district(couch_server.url)
    docs = demo_history(NOW)
    database = connect(couch_server.url)["district"]
    assert write_history(database, docs) == len(docs)  # the validation refused none
    assert write_history(database, demo_history(NOW)) == 0  # a second run writes nothing
    return docs


def test_history_is_deterministic_and_in_the_past(written: list[dict[str, object]]) -> None:
    assert demo_history(NOW) == [{k: v for k, v in d.items() if k != "_rev"} for d in written]
    cases = [d for d in written if d["type"] == "case"]
    assert 80 <= len(cases) <= 200
    assert {d["township"] for d in cases} == {JINGGUAN, TIANSHENG}
    stamps = [datetime.fromisoformat(str(d["wall_time"])) for d in written]
    assert max(stamps) <= NOW and min(stamps) >= NOW - timedelta(days=43)


def test_dashboard_has_something_in_every_figure(
    couch_server: CouchUnderTest, written: list[dict[str, object]], sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        load_demo(session)  # the catalogue: departments and legal limits
        session.commit()
    result = project(
        RemoteDatabase(connect(couch_server.url), "district"), sessions, "district",
        WorkCalendar(), TODAY, extension=DistrictExtension(NOW),
    )  # fmt: skip
    cases = sum(1 for d in written if d["type"] == "case")
    assert result.errors == 0 and result.cases_projected >= cases  # (a case may fold twice)
    period = Period(TODAY - timedelta(days=43), TODAY)
    with sessions() as session:
        by_township = {f.key: f for f in figures(session, period, TODAY)}
        departments = figures(session, period, TODAY, "department")
        staff = {f.key for f in figures(session, period, TODAY, "staff", JINGGUAN)}
        conflicts = session.scalar(select(func.sum(CaseRow.conflicts)))
    assert conflicts == 0  # every event falls where it is allowed: stamped as it happened
    assert set(by_township) == {JINGGUAN, TIANSHENG}
    total = Figures.total(list(by_township.values()))
    assert total.cases == cases - 1  # the transferred original counts once, where it went
    for name in ("completed", "red", "green", "returns", "rated", "bad", "nearby", "no_trip"):
        assert getattr(total, name) > 0, name
    assert total.average_days is not None and total.average_legal is not None
    assert len(departments) >= 5 and all(f.key for f in departments)
    assert {"jg.li", "jg.zhang"} <= staff
