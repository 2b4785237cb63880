"""The township's SLA clock with an injected ``today`` (no sleeping), on SQLite and PostgreSQL:
due dates and green → yellow → red across the 2026 National Day break (dates from
``../shared/vectors/workdays_2026.json``) and into 2027, which no calendar data covers yet
(provisional, marked 暂定 in the inbox, until the district enters the State Council's notice),
and deemed acceptance: a case received but neither accepted nor returned counts as accepted on
the 5th working day after ``received``, and says so.

The cases are projected from an in-memory case database through ``sync.projection`` into the
township's migrated read model and read back through ``township.inbox.inbox_page``, as the
console does; ``refold_all`` moves them to the next day, as the node does once a day.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader
from sqlalchemy.orm import Session, sessionmaker

from core.calendar import CalendarException, WorkCalendar
from core.cases import (
    Accepted,
    Case,
    EventPayload,
    Origin,
    Person,
    Received,
    Submitted,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CatalogueItem, HandlingLevel, Kind, Mode
from core.clock import HlcClock
from core.fold import DEEMED_ACCEPTANCE_DAYS
from core.sla import Colour, SlaThresholds
from sync.memory import MemoryDatabase
from sync.projection import project, refold_all
from sync.readmodel import CaseRow
from sync.sql import make_engine, make_sessionmaker
from tests.sql import throwaway_database
from township import db as township_db
from township.inbox import InboxFilter, InboxPage, inbox_page
from township.web.i18n import install

CST = timezone(timedelta(hours=8))
T, A = "500109110000", "500109110201"
SOURCE = "township"
CALENDAR = WorkCalendar()  # the district has entered nothing: 2027 is provisional
THRESHOLDS = SlaThresholds(yellow_remaining_days=2, yellow_elapsed_ratio=0.8)
VECTORS = json.loads(
    (Path(__file__).resolve().parents[3] / "shared" / "vectors" / "workdays_2026.json").read_text()
)
TEMPLATES = Path(__file__).resolve().parents[2] / "township" / "templates"


def _vector(accepted_on: str, working_days: int) -> date:
    """The due date the shared vectors give for an acceptance day and a limit."""
    [found] = [
        c["due_on"]
        for c in VECTORS["cases"]
        if c["accepted_on"] == accepted_on and c["working_days"] == working_days
    ]
    return date.fromisoformat(found)


def _item(limit: int) -> CatalogueItem:
    return CatalogueItem(
        code=f"500109ZW{limit:04d}", name=f"承诺{limit}个工作日的事项", kind=Kind.GOVERNMENT,
        handling_level=HandlingLevel.TOWNSHIP, modes=(Mode.AGENCY,), department="区民政局",
        legal_limit_days=limit * 2, promised_limit_days=limit,
    )  # fmt: skip


@dataclass(frozen=True)
class Opened:
    """A case as its documents say: opened at a kiosk, received (and accepted) by the node."""

    case: Case
    docs: list[dict[str, Any]]


def _at(moment: datetime) -> Callable[[], int]:
    """A wall clock stopped at ``moment`` (milliseconds), for an HLC."""
    return lambda: int(moment.timestamp() * 1000)


def _open(n: int, limit: int, received: date, accepted: date | None) -> Opened:
    """Opened at village A's kiosk the morning of ``received``; the township's node writes
    ``received`` that day and, if ``accepted``, staff accept it that day (server times)."""
    opened_at = datetime(received.year, received.month, received.day, 9, tzinfo=CST)
    kiosk = Origin(A, "k7x2m9qa")
    clock = HlcClock(kiosk.key, lambda: int(opened_at.timestamp() * 1000))
    case = new_case(
        origin=kiosk, counter=n * 10, hlc=clock.tick(), wall_time=opened_at, author="jg.v201",
        village=A, township=T, item=_item(limit), catalogue_version=1,
        applicant=Person(name=f"村民{n}", id_number="500109194501010020", phone="13800000000"),
        mode=Mode.AGENCY, handling_unit=T,
    )  # fmt: skip
    submitted = new_event(case, Submitted(), origin=kiosk, counter=n * 10 + 1,
                          hlc=clock.tick(), wall_time=opened_at, author="jg.v201")  # fmt: skip
    docs = [case_to_doc(case), event_to_doc(submitted)]
    node = Origin(T, "tw01abcd")
    at_node = opened_at + timedelta(hours=1)
    steps: list[tuple[EventPayload, datetime]] = [
        (Received(receiver=T, received_at=at_node), at_node)
    ]
    if accepted is not None:
        steps.append((Accepted(), datetime(accepted.year, accepted.month, accepted.day, 15,
                                           tzinfo=CST)))  # fmt: skip
    after = submitted.stamp
    for i, (payload, when) in enumerate(steps, start=1):
        stamp = HlcClock(node.key, _at(when)).tick(after=after)
        event = new_event(case, payload, origin=node, counter=n * 10 + i, hlc=stamp,
                          wall_time=when, author="zhang.t")  # fmt: skip
        docs.append(event_to_doc(event))
        after = stamp
    return Opened(case, docs)


NATIONAL_DAY = _open(1, 5, date(2026, 9, 30), date(2026, 9, 30))
"""Accepted the day before the break: due on the 5th working day after it."""
BEFORE_BREAK = _open(2, 3, date(2026, 9, 29), date(2026, 9, 29))
DEEMED = _open(3, 5, date(2026, 9, 29), None)
"""Received the day before, never accepted nor returned."""
DECEMBER = _open(4, 10, date(2026, 12, 24), date(2026, 12, 24))
"""Accepted on Christmas Eve: due in provisional 2027."""
CASES = [NATIONAL_DAY, BEFORE_BREAK, DEEMED, DECEMBER]


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The township's read model (``alembic upgrade head``) on each database, empty."""
    with throwaway_database(request.param, tmp_path) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()


@pytest.fixture
def source() -> MemoryDatabase:
    """The node's case database with the four cases, as replication leaves them."""
    db = MemoryDatabase(SOURCE)
    db.bulk_docs([doc for opened in CASES for doc in opened.docs])
    return db


def _inbox(sessions: sessionmaker[Session], today: date) -> InboxPage:
    with sessions() as session:
        return inbox_page(session, T, InboxFilter(), today)


def _colours(sessions: sessionmaker[Session], today: date) -> dict[str, str | None]:
    """Each case's colour in the inbox on ``today`` (the read model refolded for that day)."""
    refold_all(sessions, CALENDAR, today, thresholds=THRESHOLDS)
    return {row.case_number: colour for row, colour in _inbox(sessions, today).rows}


def _row(sessions: sessionmaker[Session], opened: Opened) -> CaseRow:
    with sessions() as session:
        row = session.get(CaseRow, opened.case.id)
        assert row is not None
        session.expunge(row)
        return row


def _render(found: InboxPage) -> str:
    """The inbox table as the console renders it (Chinese)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    install(SimpleNamespace(engine=env))
    return env.get_template("inbox_part.html").render(
        found=found, wanted=InboxFilter(), colours=list(Colour), names={A: "示范村"}
    )


def test_due_dates_across_national_day(
    sessions: sessionmaker[Session], source: MemoryDatabase
) -> None:
    project(source, sessions, SOURCE, CALENDAR, date(2026, 9, 30), thresholds=THRESHOLDS)
    national = _row(sessions, NATIONAL_DAY)
    assert national.due_on == _vector("2026-09-30", 5) == date(2026, 10, 13)
    assert not national.due_provisional and national.accepted_on == date(2026, 9, 30)
    before = _row(sessions, BEFORE_BREAK)
    assert before.due_on == _vector("2026-09-29", 3) == date(2026, 10, 9)
    # Not accepted: the expected date as if accepted on arrival.
    deemed = _row(sessions, DEEMED)
    assert deemed.status == "received" and deemed.due_on is None
    assert deemed.expected_due_on == date(2026, 10, 12)


def test_colours_move_on_working_days_only(
    sessions: sessionmaker[Session], source: MemoryDatabase
) -> None:
    project(source, sessions, SOURCE, CALENDAR, date(2026, 9, 30), thresholds=THRESHOLDS)
    n = NATIONAL_DAY.case.case_number
    # Due 13 October, 5 working days: green through the week-long break (no working day
    # passes), yellow from the make-up Saturday 10 October (2 working days left), red after.
    expected = {
        date(2026, 9, 30): Colour.GREEN,
        date(2026, 10, 4): Colour.GREEN,  # the calendar counts 9 days to go, 5 working days
        date(2026, 10, 7): Colour.GREEN,
        date(2026, 10, 9): Colour.GREEN,
        date(2026, 10, 10): Colour.YELLOW,  # 调休 working Saturday
        date(2026, 10, 11): Colour.YELLOW,
        date(2026, 10, 13): Colour.YELLOW,  # the due day itself
        date(2026, 10, 14): Colour.RED,
    }
    seen = {day: _colours(sessions, day)[n] for day in expected}
    assert seen == {day: c.value for day, c in expected.items()}
    # The inbox's colour filter and counts agree with the rows on the same day.
    with sessions() as session:
        red = inbox_page(session, T, InboxFilter(colour="red"), date(2026, 10, 14))
    assert n in {r.case_number for r, _ in red.rows} and red.colours[Colour.RED] >= 1


def test_deemed_acceptance_after_five_working_days(
    sessions: sessionmaker[Session], source: MemoryDatabase
) -> None:
    project(source, sessions, SOURCE, CALENDAR, date(2026, 9, 29), thresholds=THRESHOLDS)
    # Received Tuesday 29 September: the 5 working days are 30 Sep, 8, 9, 10 (make-up Saturday)
    # and 12 October — the break does not count.
    fifth = CALENDAR.add_working_days(date(2026, 9, 29), DEEMED_ACCEPTANCE_DAYS).day
    assert fifth == date(2026, 10, 12)
    for day in (date(2026, 9, 30), date(2026, 10, 7), date(2026, 10, 12)):
        refold_all(sessions, CALENDAR, day, thresholds=THRESHOLDS)
        row = _row(sessions, DEEMED)
        assert row.status == "received" and not row.accepted_deemed, day
        assert _colours(sessions, day)[DEEMED.case.case_number] is None  # not supervised yet
    refold_all(sessions, CALENDAR, date(2026, 10, 13), thresholds=THRESHOLDS)
    row = _row(sessions, DEEMED)
    assert row.status == "accepted" and row.accepted_deemed
    assert row.accepted_on == fifth  # accepted on the 5th working day, not when noticed
    assert row.due_on == CALENDAR.add_working_days(fifth, 5).day == date(2026, 10, 19)
    assert row.state["accepted_deemed"] is True
    assert row.state["deemed_on"]["day"] == fifth.isoformat()
    found = _inbox(sessions, date(2026, 10, 13))
    html = _render(found)
    cell = html.split(f'data-case="{DEEMED.case.case_number}"')[1].split("</tr>")[0]
    assert "已受理" in cell and "视为受理" in cell and "2026-10-19" in cell
    colours = _colours(sessions, date(2026, 10, 13))
    assert colours[DEEMED.case.case_number] == Colour.GREEN.value


def test_limits_into_provisional_2027(
    sessions: sessionmaker[Session], source: MemoryDatabase
) -> None:
    project(source, sessions, SOURCE, CALENDAR, date(2026, 12, 24), thresholds=THRESHOLDS)
    n = DECEMBER.case.case_number
    row = _row(sessions, DECEMBER)
    # 10 working days from Thursday 24 December: 25, 28–31 December, then 4–8 January 2027
    # (1 January, 元旦, is a statutory holiday the law fixes; 2027 has no announced make-up days).
    assert row.due_on == date(2027, 1, 8) and row.due_provisional
    cell = _render(_inbox(sessions, date(2026, 12, 24))).split(f'data-case="{n}"')[1]
    assert "2027-01-08" in cell.split("</tr>")[0] and "暂定" in cell.split("</tr>")[0]
    expected = {
        date(2026, 12, 31): Colour.GREEN,
        date(2027, 1, 1): Colour.GREEN,  # holiday: 5 working days to go
        date(2027, 1, 5): Colour.GREEN,  # 7 of 10 used, 3 left
        date(2027, 1, 6): Colour.YELLOW,  # 8 of 10 used (80 %), 2 left
        date(2027, 1, 8): Colour.YELLOW,
        date(2027, 1, 9): Colour.RED,  # a Saturday, the day after
    }
    seen = {day: _colours(sessions, day)[n] for day in expected}
    assert seen == {day: c.value for day, c in expected.items()}
    # The district enters the 2027 notice (say 1 and 4 January off, Saturday 9 January worked):
    # a refold fixes the date and it is no longer provisional.
    announced = WorkCalendar(
        exceptions=(
            CalendarException(date(2027, 1, 1), False, "元旦"),
            CalendarException(date(2027, 1, 4), False, "元旦调休（示例）"),
            CalendarException(date(2027, 1, 9), True, "调休上班（示例）"),
        ),
        announced_years=frozenset({2027}),
    )
    refold_all(sessions, announced, date(2027, 1, 4), thresholds=THRESHOLDS)
    row = _row(sessions, DECEMBER)
    assert row.due_on == date(2027, 1, 9) and not row.due_provisional
    cell = _render(_inbox(sessions, date(2027, 1, 4))).split(f'data-case="{n}"')[1]
    assert "2027-01-09" in cell.split("</tr>")[0] and "暂定" not in cell.split("</tr>")[0]
