"""The district dashboard over a simulated district: 17 townships, 340 villages, 1,000,000 cases,
and the district read model's rebuild rate.

Run: ``.venv/bin/python benchmarks/district.py`` (SQLite: ≈ 10 min on 2 cores; ``--databases
sqlite,postgresql`` for both, ≈ 25–30 min; ``--cases``, ``--repeat``, ``--rebuild-events``; 0
skips a part).

Dashboard. The cases are seeded straight into the district's read model — ``cases`` and their
supervision facts ``case_supervision``, the fact row copying ``FACT_COLUMNS`` from the case row
as the projection's district extension does, with the item's department and legal limit from
the catalogue — in a database built by the district's migrations, the 50 benchmark items in its
catalogue (``catalogue_items``), then ANALYZEd. Two years of intake over the 17 townships and
their 20 villages each (one case in ten at a township counter, without a village): cases
older than two months closed (completed, some refused, withdrawn or transferred), younger ones
in every status (the accepted ones with due dates, some red); every mode and handling level, 50
items of every kind under 8 departments (legal limits on nine in ten), 5 staff per township
(one case in five unassigned), completed cases with their working days taken (some late),
ratings (one in twelve a 差评) with follow-ups open, late or closed. Each dashboard query is
run once (*first*: a period with whole past months groups them and stores their rollups,
``central.services.rollups``) and then timed ``--repeat`` times (p50 / p95, reading the
rollups): the figures by township for a month, a quarter and the whole two years, one
township's figures, the figures by village, staff member, service and department, the
ranking, the cases behind a figure, and the alerts. Target: every query under 1 s.

Rebuild. ``--rebuild-events`` events (each case: ``submitted``, ``received``, ``accepted``,
``assigned``; ``seed_store`` of ``benchmarks/township.py``) and their cases are written into an
embedded store standing in for the `district` database, then ``sync.projection.project`` with
the district's extension (``DistrictExtension``: the supervision fact rows, the department and
legal limit looked up in the catalogue) rebuilds a fresh read model from it, built by the
district's migrations with the catalogue present: events and cases per second, store reads
included.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from benchmarks.township import seed_store  # noqa: E402
from central import db as district_db  # noqa: E402
from central.db.models import CaseSupervision  # noqa: E402
from central.services.alerts import alerts  # noqa: E402
from central.services.catalogue import create_item  # noqa: E402
from central.services.dashboard import Period, figure_cases, figures, ranking  # noqa: E402
from central.services.district_model import FACT_COLUMNS, DistrictExtension  # noqa: E402
from core.calendar import WorkCalendar  # noqa: E402
from core.catalogue import HandlingLevel, Kind, Mode  # noqa: E402
from core.fold import CaseStatus  # noqa: E402
from sync.projection import project  # noqa: E402
from sync.readmodel import CaseRow, yellow_from  # noqa: E402
from sync.sql import make_engine, make_sessionmaker  # noqa: E402
from sync.store import SQLiteStore  # noqa: E402
from tests.sql import throwaway_database  # noqa: E402

TOWNSHIPS = [f"500109{n:03d}000" for n in range(101, 118)]
STATUSES = [s for s in CaseStatus if s is not CaseStatus.DRAFT]
CLOSED = [CaseStatus.COMPLETED, CaseStatus.REFUSED, CaseStatus.WITHDRAWN, CaseStatus.TRANSFERRED]
CLOSED_WEIGHTS = [90, 4, 3, 3]
LEVELS, LEVEL_WEIGHTS = [5, 4, 3, 2, 1], [55, 25, 12, 5, 3]
"""Ratings: one in twelve a 差评 (levels 1-2)."""
NOW = datetime.now(UTC)
DEPARTMENTS = ["区民政局", "区人力社保局", "区卫生健康委", "区市场监管局", "区医保局",
               "区农业农村委", "区住房城乡建委", "区残联"]  # fmt: skip
PROMISED = (1, 3, 5, 10, 20)
ITEMS: list[dict[str, Any]] = [
    {
        "code": f"500109ZW{n:04d}", "name": f"演示事项{n:02d}", "kind": list(Kind)[n % 4].value,
        "handling_level": list(HandlingLevel)[n % 3].value, "modes": [m.value for m in Mode],
        "department": DEPARTMENTS[n % 8], "promised_limit_days": PROMISED[n % 5],
        "legal_limit_days": None if n % 10 == 9 else 2 * PROMISED[n % 5] + 5,
    }
    for n in range(50)
]  # fmt: skip
"""The benchmark's catalogue: 50 items under 8 departments, nine in ten with a legal limit."""
STAFF = {
    t: [(f"staff{t[6:9]}{k}", f"工作人员{t[6:9]}-{k}") for k in range(1, 6)] for t in TOWNSHIPS
}
"""5 staff per township: (assignee, assignee_name)."""
TODAY = date.today()


def catalogue(session: Session) -> None:
    """The benchmark's items in the district's catalogue (``catalogue_items``)."""
    for item in ITEMS:
        create_item(session, item, "bench")


def seed(sessions: sessionmaker[Session], count: int) -> None:
    """``count`` cases over two years with their supervision facts, and the catalogue."""
    with sessions() as session:
        catalogue(session)
    rng = random.Random(2026)
    calendar = WorkCalendar()
    start = NOW - timedelta(days=730)
    step = timedelta(days=730) / count
    cases: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    for n in range(count):
        township = TOWNSHIPS[n % 17]
        origin = f"{township[:9]}{201 + n % 20:03d}"
        village = None if n % 10 == 3 else origin
        item = ITEMS[n % 50]
        opened = start + step * n
        day = opened.date()
        # Cases older than two months are closed, as in a district in service (a few still
        # open there would be red); younger ones are in every state.
        old = (NOW - opened).days > 60
        status = rng.choices(CLOSED, CLOSED_WEIGHTS)[0] if old else rng.choice(STATUSES)
        promised = int(item["promised_limit_days"])
        supervised = status in (CaseStatus.ACCEPTED, CaseStatus.SUSPENDED)
        due = calendar.add_working_days(day, promised).day if supervised else None
        done = status is CaseStatus.COMPLETED
        taken = rng.randint(0, promised + 3) if done else None
        rating = rng.choices(LEVELS, LEVEL_WEIGHTS)[0] if done and rng.random() < 0.6 else None
        bad = rating is not None and rating <= 2
        # A 差评 is followed up within weeks: the old ones are closed, recent ones open or late.
        follow_up = ("closed" if old else rng.choice(("open", "closed"))) if bad else ""
        staff = rng.choice(STAFF[township]) if rng.random() < 0.8 else (None, "")
        case_id = f"case:{origin}:bench001:{n + 1:08d}"
        row: dict[str, Any] = {
            "case_id": case_id, "case_number": f"{origin}-{day:%Y%m%d}-BENCH001-{n + 1:07d}",
            "village": village, "township": township, "handling_unit": township,
            "origin_unit": origin, "opened_at": opened, "item_code": item["code"],
            "item_name": item["name"], "catalogue_version": 1, "kind": item["kind"],
            "case_type": "promised", "handling_level": item["handling_level"],
            "mode": rng.choice(list(Mode)).value, "status": status.value,
            "applicant_kind": "person", "applicant_name": "某某",
            "applicant_id_masked": "500109********0020", "phone": "13800138000",
            "representative_name": "", "representative_phone": "", "elderly": False,
            "disabled": False, "bedridden": False, "assignee": staff[0],
            "assignee_name": staff[1], "submitted_on": day, "received_on": day,
            "accepted_on": day if supervised else None, "accepted_deemed": False,
            "due_on": due, "due_provisional": rng.random() < 0.01 if due else False,
            "expected_due_on": None, "expected_due_provisional": False,
            "yellow_on": yellow_from(day, due, calendar) if due else None,
            "completed_on": day + timedelta(days=taken or 0) if done else None,
            "on_time": (taken or 0) <= promised if done else None,
            "returns": 1 if rng.random() < 0.05 else 0, "conflicts": 0,
            "follow_up_open": follow_up == "open", "last_hlc": "", "last_seq": "0",
            "folded_on": TODAY, "state": {},
        }  # fmt: skip
        cases.append(row)
        facts.append({
            **{name: row[name] for name in FACT_COLUMNS},
            "case_id": case_id, "department": item["department"],
            "legal_days": item["legal_limit_days"], "promised_days": promised,
            "days_taken": taken, "rating_level": rating, "bad_rating": bad,
            "follow_up": follow_up,
            "follow_up_deadline": day + timedelta(days=14) if bad else None,
            "transferred_to": TOWNSHIPS[(n + 1) % 17]
            if status is CaseStatus.TRANSFERRED else None,
        })  # fmt: skip
        if len(cases) == 5000:
            _insert(sessions, cases, facts)
            cases, facts = [], []
    if cases:
        _insert(sessions, cases, facts)
    with sessions.begin() as session:  # statistics, as a database in service has them
        session.execute(text("ANALYZE"))


def _insert(sessions: sessionmaker[Session], cases: list[Any], facts: list[Any]) -> None:
    with sessions.begin() as session:
        session.execute(insert(CaseRow), cases)
        session.execute(insert(CaseSupervision), facts)


def queries() -> list[tuple[str, Callable[[Session], Any]]]:
    """The dashboard's queries, each as the page runs it."""
    month = Period(TODAY.replace(day=1), TODAY)
    quarter = Period(TODAY - timedelta(days=90), TODAY)
    everything = Period(TODAY - timedelta(days=731), TODAY)
    one = TOWNSHIPS[3]
    staff = STAFF[one][1][0]
    return [
        ("by township, this month", lambda s: figures(s, month, TODAY)),
        ("by township, a quarter", lambda s: figures(s, quarter, TODAY)),
        ("by township, two years", lambda s: figures(s, everything, TODAY)),
        ("one township, two years", lambda s: figures(s, everything, TODAY, township=one)),
        ("by village, a quarter", lambda s: figures(s, quarter, TODAY, "village")),
        ("by staff, one township, quarter", lambda s: figures(s, quarter, TODAY, "staff", one)),
        ("by service, a quarter", lambda s: figures(s, quarter, TODAY, "service")),
        ("by department, two years", lambda s: figures(s, everything, TODAY, "department")),
        (
            "ranking by 差评 rate (quarter)",
            lambda s: ranking(figures(s, quarter, TODAY), "bad_rate"),
        ),
        (
            "cases behind red (one township)",
            lambda s: figure_cases(s, everything, TODAY, township=one, figure="red"),
        ),
        (
            "cases behind 差评 (all, quarter)",
            lambda s: figure_cases(s, quarter, TODAY, figure="bad"),
        ),
        (
            "cases behind a staff's overdue",
            lambda s: figure_cases(
                s, quarter, TODAY, township=one, group="staff", key=staff, figure="overdue"
            ),
        ),
        ("alerts", lambda s: alerts(s, TODAY, datetime.now(UTC), 24.0)),
    ]


def time_queries(
    sessions: sessionmaker[Session], repeat: int
) -> list[tuple[str, float, float, float]]:
    """(query, first run ms, p50 ms, p95 ms of the ``repeat`` runs after it). The first run of
    a period with whole past months groups them and stores their rollups; later runs read
    them."""
    found = []
    for label, run in queries():
        times = []
        for _ in range(repeat + 1):
            with sessions() as session:
                started = time.perf_counter()
                run(session)
                times.append((time.perf_counter() - started) * 1000)
        first, rest = times[0], sorted(times[1:])
        found.append((label, first, statistics.median(rest), rest[round(0.95 * (len(rest) - 1))]))
    return found


def dashboard(kind: str, folder: Path, count: int, repeat: int) -> None:
    """Seed ``count`` cases into a fresh district database of ``kind`` and time the queries."""
    with throwaway_database(kind, folder) as url:
        district_db.migrate(url)
        engine = make_engine(url)
        try:
            sessions = make_sessionmaker(engine)
            started = time.perf_counter()
            seed(sessions, count)
            seeded = time.perf_counter() - started
            print(f"{kind}: {count:,} cases seeded in {seeded:.0f} s", flush=True)
            print(f"  {'query':<34} {'first ms':>9} {'p50 ms':>9} {'p95 ms':>9}")
            for label, first, p50, p95 in time_queries(sessions, repeat):
                mark = "" if max(first, p95) < 1000 else "  (over 1 s)"
                print(f"  {label:<34} {first:9.0f} {p50:9.0f} {p95:9.0f}{mark}", flush=True)
        finally:
            engine.dispose()


def rebuild(kind: str, folder: Path, store: SQLiteStore, cases: int) -> None:
    """Rebuild a fresh district read model of ``kind`` from ``store``; print the rate."""
    with throwaway_database(kind, folder) as url:
        district_db.migrate(url)
        engine = make_engine(url)
        try:
            sessions = make_sessionmaker(engine)
            with sessions() as session:
                catalogue(session)
            started = time.perf_counter()
            result = project(
                store, sessions, "district", WorkCalendar(), TODAY, extension=DistrictExtension()
            )
            seconds = time.perf_counter() - started
            with sessions() as session:  # the facts are there, with the catalogue's department
                facts = session.scalar(
                    select(func.count())
                    .select_from(CaseSupervision)
                    .where(CaseSupervision.department != "")
                )
            if facts != cases:
                raise RuntimeError(f"{facts} supervision rows with a department, {cases} cases")
            events = result.changes - cases
            print(f"  {kind:<11} {seconds:6.1f} s  {events / seconds:8,.0f} events/s  "
                  f"{cases / seconds:7,.0f} cases/s  ({result.changes:,} documents)",
                  flush=True)  # fmt: skip
        finally:
            engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild-events", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    with tempfile.TemporaryDirectory(prefix="sanji-district-") as folder:
        tmp = Path(folder)
        if args.rebuild_events:
            print(f"Read model rebuild from {args.rebuild_events:,} events", flush=True)
            store = SQLiteStore(tmp / "store.sqlite3", "district")
            try:
                started = time.perf_counter()
                cases = seed_store(store, args.rebuild_events)
                seeded = time.perf_counter() - started
                print(f"  store seeded with {cases:,} cases in {seeded:.1f} s", flush=True)
                for kind in kinds:
                    (tmp / f"r-{kind}").mkdir()
                    rebuild(kind, tmp / f"r-{kind}", store, cases)
            finally:
                store.close()
        if args.cases:
            print(f"\nDashboard over {args.cases:,} cases ({args.repeat} runs per query)")
            for kind in kinds:
                (tmp / kind).mkdir()
                dashboard(kind, tmp / kind, args.cases, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
