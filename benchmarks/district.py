"""The district dashboard over a simulated district: 17 townships, 340 villages, 1,000,000 cases.

Run: ``.venv/bin/python benchmarks/district.py`` (SQLite: ≈ 3 min on 2 cores; ``--databases
sqlite,postgresql`` for both; ``--cases``, ``--repeat``).

The cases are seeded straight into the district's read model (``cases`` and the supervision
facts ``case_supervision``, as the projection and its district extension leave them) in a
database built by the district's migrations, then ANALYZEd. Two years of intake over the 17
townships and their 20 villages each: every status, mode, kind and handling level, a third
accepted with due dates (some red), completed cases with their working days taken, ratings
(one in twelve a 差评) with follow-ups open, late or closed. Each dashboard query is timed
``--repeat`` times (p50 / p95): the per-township figures for a month, a quarter and the whole
two years, one township's figures, the ranking, the cases behind a figure, and the alerts.
Target: every query under 1 s. (The read model's rebuild rate is measured for the township's
projection in ``benchmarks/township.py``; the district's is the same projection with its
supervision extension.)
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

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from central import db as district_db  # noqa: E402
from central.db.models import CaseSupervision  # noqa: E402
from central.services.alerts import alerts  # noqa: E402
from central.services.dashboard import Period, figure_cases, ranking, township_figures  # noqa: E402
from core.calendar import WorkCalendar  # noqa: E402
from core.catalogue import HandlingLevel, Kind, Mode  # noqa: E402
from core.fold import CaseStatus  # noqa: E402
from sync.readmodel import CaseRow, yellow_from  # noqa: E402
from sync.sql import make_engine, make_sessionmaker  # noqa: E402
from tests.sql import throwaway_database  # noqa: E402

TOWNSHIPS = [f"500109{n:03d}000" for n in range(101, 118)]
STATUSES = [s for s in CaseStatus if s is not CaseStatus.DRAFT]
LEVELS = list(HandlingLevel)
TODAY = date.today()


def seed(sessions: sessionmaker[Session], count: int) -> None:
    """``count`` cases over two years with their supervision facts."""
    rng = random.Random(2026)
    calendar = WorkCalendar()
    start = datetime.now(UTC) - timedelta(days=730)
    step = timedelta(days=730) / count
    cases: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    for n in range(count):
        township = TOWNSHIPS[n % 17]
        village = f"{township[:9]}{201 + n % 20:03d}"
        opened = start + step * n
        day = opened.date()
        status = rng.choice(STATUSES)
        promised = rng.choice((1, 3, 5, 10, 20))
        supervised = status in (CaseStatus.ACCEPTED, CaseStatus.SUSPENDED)
        due = calendar.add_working_days(day, promised).day if supervised else None
        done = status is CaseStatus.COMPLETED
        taken = rng.randint(0, promised + 3) if done else None
        rating = rng.randint(1, 5) if done and rng.random() < 0.6 else None
        bad = rating is not None and rating <= 2
        case_id = f"case:{village}:bench001:{n + 1:08d}"
        cases.append({
            "case_id": case_id, "case_number": f"{village}-{day:%Y%m%d}-BENCH001-{n + 1:07d}",
            "village": village, "township": township, "handling_unit": township,
            "origin_unit": village, "opened_at": opened, "item_code": f"500109ZW{n % 50:04d}",
            "item_name": "演示事项", "catalogue_version": 1,
            "kind": rng.choice(list(Kind)).value, "case_type": "promised",
            "handling_level": rng.choice(LEVELS).value, "mode": rng.choice(list(Mode)).value,
            "status": status.value, "applicant_kind": "person", "applicant_name": "某某",
            "applicant_id_masked": "500109********0020", "phone": "13800138000",
            "representative_name": "", "representative_phone": "", "elderly": False,
            "disabled": False, "bedridden": False, "assignee": None, "assignee_name": "",
            "submitted_on": day, "received_on": day, "accepted_on": day if supervised else None,
            "accepted_deemed": False, "due_on": due, "due_provisional": False,
            "expected_due_on": None, "expected_due_provisional": False,
            "yellow_on": yellow_from(day, due, calendar) if due else None,
            "completed_on": day + timedelta(days=taken or 0) if done else None,
            "on_time": (taken or 0) <= promised if done else None,
            "returns": 1 if rng.random() < 0.05 else 0, "conflicts": 0,
            "follow_up_open": bad, "last_hlc": "", "last_seq": "0", "folded_on": TODAY,
            "state": {},
        })  # fmt: skip
        facts.append({
            "case_id": case_id, "township": township, "item_code": cases[-1]["item_code"],
            "promised_days": promised, "days_taken": taken,
            "completed_on": cases[-1]["completed_on"], "rating_level": rating,
            "bad_rating": bad, "follow_up": rng.choice(("open", "closed")) if bad else "",
            "follow_up_deadline": day + timedelta(days=14) if bad else None,
            "transferred_to": None,
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
    return [
        ("figures, this month", lambda s: township_figures(s, month, TODAY)),
        ("figures, a quarter", lambda s: township_figures(s, quarter, TODAY)),
        ("figures, two years", lambda s: township_figures(s, everything, TODAY)),
        (
            "ranking by 差评 rate (quarter)",
            lambda s: ranking(township_figures(s, quarter, TODAY), "bad_rate"),
        ),
        (
            "cases behind red (one township)",
            lambda s: figure_cases(s, everything, TODAY, township=TOWNSHIPS[3], figure="red"),
        ),
        ("cases behind 差评 (all)", lambda s: figure_cases(s, quarter, TODAY, figure="bad")),
        ("alerts", lambda s: alerts(s, TODAY, datetime.now(UTC), 24.0)),
    ]


def time_queries(sessions: sessionmaker[Session], repeat: int) -> list[tuple[str, float, float]]:
    """(query, p50 ms, p95 ms)."""
    figures = []
    for label, run in queries():
        times = []
        for _ in range(repeat):
            with sessions() as session:
                started = time.perf_counter()
                run(session)
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        figures.append((label, statistics.median(times), times[round(0.95 * (len(times) - 1))]))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--databases", default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sanji-district-") as folder:
        for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
            (Path(folder) / kind).mkdir()
            with throwaway_database(kind, Path(folder) / kind) as url:
                district_db.migrate(url)
                engine = make_engine(url)
                try:
                    sessions = make_sessionmaker(engine)
                    started = time.perf_counter()
                    seed(sessions, args.cases)
                    seeded = time.perf_counter() - started
                    print(f"{kind}: {args.cases:,} cases seeded in {seeded:.0f} s")
                    print(f"  {'query':<34} {'p50 ms':>9} {'p95 ms':>9}")
                    for label, p50, p95 in time_queries(sessions, args.repeat):
                        mark = "" if p95 < 1000 else "  (over 1 s)"
                        print(f"  {label:<34} {p50:9.0f} {p95:9.0f}{mark}")
                finally:
                    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
