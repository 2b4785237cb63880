"""The dashboard's figures and the ranking (issue 8 items 2-3) against a hand-computed fixture of
cases across two townships, with a provisional 2027 due date and a case transferred between the
townships — per township and by every other grouping (village, kind, mode, level, staff,
service, department), with the ratings distribution and the legal limits — on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import MonthFigures
from central.services.catalogue import create_item
from central.services.dashboard import (
    STEADY,
    TODAYS,
    Figures,
    Period,
    _months,
    figure_cases,
    figures,
    ranking,
)
from central.services.district_model import DistrictExtension
from central.services.rollups import COUNTS, MARK
from core.cases import (
    Accepted,
    Case,
    Completed,
    Delivery,
    MissingMaterial,
    Rated,
    RatingChannel,
    Resubmitted,
    Returned,
    Submitted,
    Transferred,
    new_case,
)
from core.catalogue import CatalogueItem, Mode
from sync.memory import MemoryDatabase
from sync.projection import project
from tests.integration.test_projection import CAL, QUICK, SLOW, TOWNSHIP, World, Writer, at, person

OTHER_TOWNSHIP = "500109001000"
TODAY = date(2026, 12, 31)
DECEMBER = Period(date(2026, 12, 1), date(2026, 12, 31))


class CentreWriter(Writer):
    """A township centre writing its own counter cases."""

    def case(self, moment: datetime, applicant: Any, **options: Any) -> Case:  # type: ignore[override]
        of: CatalogueItem = options.get("of", SLOW)
        counter, hlc = self._next(moment)
        return new_case(
            origin=self.origin, counter=counter, hlc=hlc, wall_time=moment,
            author=f"staff.{self.origin.instance}", village=None, township=self.origin.unit,
            item=of, catalogue_version=1, applicant=applicant,
            mode=options.get("mode", Mode.WINDOW), handling_unit=self.origin.unit,
            linked_case=options.get("linked_case"),
        )  # fmt: skip


def _fixture() -> MemoryDatabase:
    db = MemoryDatabase()
    a = World(db, centre=CentreWriter(TOWNSHIP, "jg0001"))
    b = World(db, centre=CentreWriter(OTHER_TOWNSHIP, "ts0001"))
    ann = person("张三", "50010919500101001", "13800000001")
    # a1: accepted Mon Dec 7, due Dec 10, completed Dec 10 on time (3 days); 差评 never followed
    # up: its default deadline (Dec 24) has passed → a late follow-up.
    a.open("a1", at("2026-12-07", 9), ann, of=QUICK, village=None, mode=Mode.WINDOW)
    a.act("a1", Submitted(), at("2026-12-07", 10))
    a.act("a1", Accepted(), at("2026-12-07", 11))
    a.act("a1", Completed(result="已办结", delivery=Delivery.WINDOW), at("2026-12-10"))
    a.act("a1", Rated(level=1, channel=RatingChannel.TOWNSHIP), at("2026-12-10", 15))
    # a2: agency (no trip), accepted Dec 14 with 15 days → due Tue Jan 5 2027, provisional (no
    # 2027 arrangement yet); 13 of 15 days gone on Dec 31 → yellow.
    a.open("a2", at("2026-12-14", 9), ann, of=SLOW, village=None, mode=Mode.AGENCY)
    a.act("a2", Submitted(), at("2026-12-14", 10))
    a.act("a2", Accepted(), at("2026-12-14", 11))
    # a3: door-to-door (no trip), returned once, accepted Dec 2 → due Dec 7 → red on Dec 31.
    a.open("a3", at("2026-12-01", 9), ann, of=QUICK, village=None, mode=Mode.DOOR_TO_DOOR)
    a.act("a3", Submitted(), at("2026-12-01", 10))
    a.act("a3", Returned(missing=(MissingMaterial(name="户口簿"),)), at("2026-12-01", 11))
    a.act("a3", Resubmitted(), at("2026-12-02", 10))
    a.act("a3", Accepted(), at("2026-12-02", 11))
    # a4 → b2: opened at the wrong township, transferred; counts once, at the new one.
    a.open("a4", at("2026-12-08", 9), ann, of=SLOW, village=None, mode=Mode.AGENCY)
    a.act("a4", Submitted(), at("2026-12-08", 10))
    b.open("b2", at("2026-12-09", 9), ann, of=SLOW, village=None, mode=Mode.AGENCY,
           linked_case=a.cases["a4"].id)  # fmt: skip
    a.act("a4", Transferred(to_township=OTHER_TOWNSHIP, new_case_id=b.cases["b2"].id),
          at("2026-12-09", 8))  # fmt: skip
    b.act("b2", Submitted(), at("2026-12-09", 10))
    # b1: accepted Wed Dec 9, due Mon Dec 14, completed Tue Dec 15: late, 4 days; rated 5.
    b.open("b1", at("2026-12-09", 9), ann, of=QUICK, village=None, mode=Mode.WINDOW)
    b.act("b1", Submitted(), at("2026-12-09", 10))
    b.act("b1", Accepted(), at("2026-12-09", 11))
    b.act("b1", Completed(result="已办结", delivery=Delivery.WINDOW), at("2026-12-15"))
    b.act("b1", Rated(level=5, channel=RatingChannel.TOWNSHIP), at("2026-12-15", 15))
    # Opened in November: outside the period.
    b.open("old", at("2026-11-20", 9), ann, of=QUICK, village=None, mode=Mode.WINDOW)
    return db


def catalogue(session: Session) -> None:
    """The fixture's two items in the district's catalogue: QUICK under 区民政局 (legal limit 20
    working days), SLOW under 区人力社保局 (legal 30)."""
    create_item(session, msgspec.to_builtins(QUICK), "test")
    slow = {**msgspec.to_builtins(SLOW), "department": "区人力社保局", "legal_limit_days": 30}
    create_item(session, slow, "test")


def _project(sessions: sessionmaker[Session]) -> MemoryDatabase:
    with sessions() as session:
        catalogue(session)
    db = _fixture()
    project(db, sessions, "district", CAL, TODAY, extension=DistrictExtension())
    return db


def _by(sessions: sessionmaker[Session], group: str, township: str = "") -> dict[str, Figures]:
    with sessions() as session:
        return {f.key: f for f in figures(session, DECEMBER, TODAY, group, township)}


def test_township_figures_and_ranking(sessions: sessionmaker[Session]) -> None:
    _project(sessions)
    by_township = _by(sessions, "township")
    assert set(by_township) == {TOWNSHIP, OTHER_TOWNSHIP}
    a, b = by_township[TOWNSHIP], by_township[OTHER_TOWNSHIP]
    assert (a.cases, a.green, a.yellow, a.red) == (3, 0, 1, 1)
    assert (a.completed, a.completed_late, a.overdue) == (1, 0, 1)
    assert (a.nearby, a.no_trip, a.returns, a.provisional) == (3, 2, 1, 1)
    assert (a.average_days, a.average_promised, a.average_legal) == (3.0, 3.0, 20.0)
    assert (a.ratings, b.ratings) == ((1, 0, 0, 0, 0), (0, 0, 0, 0, 1))
    assert (a.rated, a.bad, a.follow_up_open, a.follow_up_late, a.follow_up_closed) == (
        1, 1, 1, 1, 0)  # fmt: skip
    assert (b.cases, b.green, b.yellow, b.red) == (2, 0, 0, 0)
    assert (b.completed, b.completed_late, b.overdue) == (1, 1, 1)
    assert (b.nearby, b.no_trip, b.returns, b.provisional) == (2, 1, 0, 0)
    assert (b.average_days, b.average_promised) == (4.0, 3.0)
    assert (b.rated, b.bad, b.follow_up_open) == (1, 0, 0)
    assert (a.bad_rate, b.bad_rate) == (1.0, 0.0)
    assert (a.overdue_rate, b.overdue_rate) == (1 / 3, 0.5)
    assert (a.returns_per_case, b.returns_per_case) == (1 / 3, 0.0)
    order = {by: [f.key for f in ranking(list(by_township.values()), by)] for by in
             ("bad_rate", "overdue_rate", "returns_per_case")}  # fmt: skip
    assert order == {
        "bad_rate": [TOWNSHIP, OTHER_TOWNSHIP],
        "overdue_rate": [OTHER_TOWNSHIP, TOWNSHIP],
        "returns_per_case": [TOWNSHIP, OTHER_TOWNSHIP],
    }
    # The period bounds are district (China Standard Time) days.
    with sessions() as session:
        nov = figures(session, Period(date(2026, 11, 1), date(2026, 11, 30)), TODAY)
        assert [(f.key, f.cases) for f in nov] == [(OTHER_TOWNSHIP, 1)]
    total = Figures.total(list(by_township.values()))
    assert (total.cases, total.red, total.overdue, total.bad, total.returns) == (5, 1, 2, 1, 1)
    assert (total.average_days, total.average_legal, total.bad_rate) == (3.5, 20.0, 0.5)


def test_figures_by_every_grouping(sessions: sessionmaker[Session]) -> None:
    _project(sessions)
    # Mode: a1 and b1 at the window (one 差评, one late), a2 and b2 by agency (a2 yellow and
    # provisional), a3 door to door (red, returned once).
    mode = _by(sessions, "mode")
    assert set(mode) == {"window", "agency", "door_to_door"}
    window, agency, door = mode["window"], mode["agency"], mode["door_to_door"]
    assert (window.cases, window.completed, window.completed_late, window.rated) == (2, 2, 1, 2)
    assert window.ratings == (1, 0, 0, 0, 1) and window.bad_rate == 0.5
    assert (agency.cases, agency.yellow, agency.provisional, agency.no_trip) == (2, 1, 1, 2)
    assert (door.cases, door.red, door.returns, door.no_trip) == (1, 1, 1, 1)
    # Kind, level, village (all at counters), staff (none assigned), service.
    kind = _by(sessions, "kind")
    assert {k: f.cases for k, f in kind.items()} == {"government": 3, "life": 2}
    assert {k: f.cases for k, f in _by(sessions, "level").items()} == {"township": 5}
    assert {k: f.cases for k, f in _by(sessions, "village").items()} == {"": 5}
    assert {k: f.cases for k, f in _by(sessions, "staff").items()} == {"": 5}
    service = _by(sessions, "service")
    assert {k: (f.cases, f.name) for k, f in service.items()} == {
        QUICK.code: (3, QUICK.name), SLOW.code: (2, SLOW.name)}  # fmt: skip
    # Department, from the district's catalogue: 区民政局 has a1 (差评), a3 (red) and b1 (late,
    # rated 5); 区人力社保局 a2 and b2, nothing overdue or rated.
    department = _by(sessions, "department")
    civil, labour = department["区民政局"], department["区人力社保局"]
    assert (civil.cases, civil.overdue, civil.bad, civil.rated) == (3, 2, 1, 2)
    assert (civil.average_legal, labour.average_legal) == (20.0, None)
    assert (labour.cases, labour.overdue, labour.rated) == (2, 0, 0)
    assert [f.key for f in ranking(list(department.values()), "overdue_rate")] == [
        "区民政局", "区人力社保局"]  # fmt: skip
    # One township's groups only.
    assert {k: f.cases for k, f in _by(sessions, "mode", OTHER_TOWNSHIP).items()} == {
        "window": 1, "agency": 1}  # fmt: skip
    # The cases behind a group's figure are the ones counted.
    with sessions() as session:
        red = figure_cases(session, DECEMBER, TODAY, group="mode", key="door_to_door", figure="red")
        counter = figure_cases(session, DECEMBER, TODAY, group="village", key="")
        late = figure_cases(
            session, DECEMBER, TODAY, group="department", key="区民政局", figure="overdue"
        )
        unassigned = figure_cases(
            session, DECEMBER, TODAY, township=OTHER_TOWNSHIP, group="staff", key=""
        )
    assert [c.township for c in red] == [TOWNSHIP] and len(counter) == 5
    assert len(late) == civil.overdue and len(unassigned) == 2


def test_the_rollups_count_every_steady_figure() -> None:
    assert set(COUNTS) == set(STEADY) and not set(STEADY) & set(TODAYS)


def test_months_of_a_period() -> None:
    long = Period(date(2026, 11, 15), date(2027, 2, 10))
    assert _months(long, date(2027, 3, 1)) == (
        [date(2026, 12, 1), date(2027, 1, 1)],
        [Period(date(2026, 11, 15), date(2026, 11, 30)), Period(date(2027, 2, 1), long.end)],
    )
    # A month not over yet is grouped live, never stored.
    assert _months(long, date(2027, 1, 31)) == (
        [date(2026, 12, 1)],
        [Period(date(2026, 11, 15), date(2026, 11, 30)), Period(date(2027, 1, 1), long.end)],
    )
    assert _months(DECEMBER, date(2027, 1, 1)) == ([date(2026, 12, 1)], [])
    assert _months(DECEMBER, TODAY) == ([], [DECEMBER])


def test_whole_past_months_come_from_their_stored_figures(sessions: sessionmaker[Session]) -> None:
    db = _project(sessions)
    autumn, later = Period(date(2026, 11, 1), date(2026, 12, 31)), date(2027, 1, 4)

    def by_township() -> dict[str, Figures]:
        with sessions() as session:
            return {f.key: f for f in figures(session, autumn, later)}

    first = by_township()
    with sessions() as session:
        marks = session.execute(
            select(MonthFigures.grp, MonthFigures.month).where(MonthFigures.township == MARK)
        ).all()
    assert sorted(marks) == [("township", date(2026, 11, 1)), ("township", date(2026, 12, 1))]
    assert by_township() == first
    assert first[OTHER_TOWNSHIP].cases == 3 and first[TOWNSHIP].cases == 3
    # What is stored is what is read …
    with sessions.begin() as session:
        row = session.scalars(
            select(MonthFigures).where(
                MonthFigures.grp == "township", MonthFigures.month == date(2026, 11, 1),
                MonthFigures.township == OTHER_TOWNSHIP,
            )
        ).one()  # fmt: skip
        row.cases = 7
    assert by_township()[OTHER_TOWNSHIP].cases == 9
    # … until a case of that month changes: its version moves on and it is grouped again.
    late = World(db, centre=CentreWriter(OTHER_TOWNSHIP, "ts0002"))
    late.open("late", at("2026-11-25", 9), person("李四", "50010919600101002", "13800000002"),
              of=QUICK, village=None, mode=Mode.WINDOW)  # fmt: skip
    project(db, sessions, "district", CAL, TODAY, extension=DistrictExtension())
    assert by_township()[OTHER_TOWNSHIP].cases == 4
    assert by_township()[TOWNSHIP] == first[TOWNSHIP]
