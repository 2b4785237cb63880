"""The township console's inbox over 100,000 cases, and the projection catching up 100,000 events.

Run: ``.venv/bin/python benchmarks/township.py`` (≈ 3–5 min on 2 cores; ``--cases``,
``--events``, ``--repeat``, ``--databases sqlite,postgresql``).

Inbox. 100,000 cases of one township (20 villages, 10 staff, two years of intake, every status,
mode and kind, a third accepted and supervised with due dates) are seeded straight into the
read model's ``cases`` table (SQLite file and the local PostgreSQL, each built by the township's
migrations, then ANALYZEd as a database in service would be). Each inbox query
``township.inbox.inbox_page`` runs — the page of 50 rows, the total and the colour counts (the
filters' village and staff lists come from the directory) — is timed ``--repeat`` times: p50
and p95 per query. Target: p95 under 100 ms.

Projection. ``--events`` events (each case: ``submitted``, ``received``, ``accepted``,
``assigned``) and their cases are written into an embedded store (``sync.store.SQLiteStore``),
then ``sync.projection.project`` catches a fresh read model up from it, as a township node
follows its CouchDB: events per second, store reads included. Target: 5,000 events/s.
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

from core.calendar import WorkCalendar  # noqa: E402
from core.cases import (  # noqa: E402
    CHINA_TIME,
    Accepted,
    Assigned,
    Origin,
    Person,
    Received,
    Submitted,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CatalogueItem, HandlingLevel, Kind, Mode  # noqa: E402
from core.clock import HlcClock  # noqa: E402
from core.fold import CaseStatus  # noqa: E402
from sync.projection import project  # noqa: E402
from sync.readmodel import CaseRow, yellow_from  # noqa: E402
from sync.sql import make_engine, make_sessionmaker  # noqa: E402
from sync.store import SQLiteStore  # noqa: E402
from tests.kiosk_folder import random_id  # noqa: E402
from tests.sql import throwaway_database  # noqa: E402
from township import db as township_db  # noqa: E402
from township.inbox import InboxFilter, inbox_page  # noqa: E402

TOWNSHIP = "500109110000"
VILLAGES = [f"500109110{n:03d}" for n in range(201, 221)]
STAFF = [(f"staff{n:02d}", f"工作人员{n:02d}") for n in range(1, 11)]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华"
ITEMS = [
    ("500109ZW0010", "生育登记", Kind.GOVERNMENT, 5),
    ("500109ZW0020", "最低生活保障申请", Kind.GOVERNMENT, 20),
    ("500109SW0001", "个体工商户设立登记", Kind.BUSINESS, 3),
    ("500109SH0006", "法律咨询", Kind.LIFE, 1),
    ("500109DW0001", "党员组织关系转接", Kind.PARTY, 5),
]
STATUSES = [s for s in CaseStatus if s is not CaseStatus.DRAFT]


# --- inbox -----------------------------------------------------------------------------------


def seed_inbox(sessions: sessionmaker[Session], count: int) -> None:
    """``count`` case rows of one township, as the projection would leave them."""
    rng = random.Random(2026)
    calendar = WorkCalendar()
    today = date.today()
    chunk: list[dict[str, Any]] = []
    for n in range(count):
        code, name, kind, limit = ITEMS[n % len(ITEMS)]
        opened = datetime.now(UTC) - timedelta(minutes=10 * (count - n))
        status = rng.choice(STATUSES)
        supervised = status in (CaseStatus.ACCEPTED, CaseStatus.SUSPENDED)
        accepted_on = opened.date() if supervised else None
        due = calendar.add_working_days(opened.date(), limit).day if supervised else None
        staff = rng.choice(STAFF) if rng.random() < 0.7 else (None, "")
        chunk.append({
            "case_id": f"case:{VILLAGES[n % 20]}:bench001:{n + 1:08d}",
            "case_number": f"{VILLAGES[n % 20]}-{opened:%Y%m%d}-BENCH001-{n + 1:06d}",
            "village": VILLAGES[n % 20] if n % 7 else None,
            "township": TOWNSHIP, "handling_unit": TOWNSHIP, "origin_unit": VILLAGES[n % 20],
            "opened_at": opened, "item_code": code, "item_name": name,
            "catalogue_version": 1, "kind": kind.value, "case_type": "commitment",
            "handling_level": "township", "mode": rng.choice(list(Mode)).value,
            "status": status.value, "applicant_kind": "person",
            "applicant_name": rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, 2)),
            "applicant_id_masked": "500109********0020",
            "phone": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
            "representative_name": "", "representative_phone": "",
            "elderly": rng.random() < 0.2, "disabled": False, "bedridden": False,
            "assignee": staff[0], "assignee_name": staff[1],
            "submitted_on": opened.date(), "received_on": opened.date(),
            "accepted_on": accepted_on, "accepted_deemed": False,
            "due_on": due, "due_provisional": False,
            "expected_due_on": None, "expected_due_provisional": False,
            "yellow_on": yellow_from(accepted_on, due, calendar) if accepted_on and due else None,
            "completed_on": today if status is CaseStatus.COMPLETED else None,
            "on_time": None, "returns": 0, "conflicts": 0, "follow_up_open": False,
            "last_hlc": f"{int(opened.timestamp() * 1000):015d}:0000:bench", "last_seq": "0",
            "folded_on": today, "state": {},
        })  # fmt: skip
        if len(chunk) == 5000:
            with sessions.begin() as session:
                session.execute(insert(CaseRow), chunk)
            chunk = []
    if chunk:
        with sessions.begin() as session:
            session.execute(insert(CaseRow), chunk)
    with sessions.begin() as session:  # statistics, as a database in service has them
        session.execute(text("ANALYZE cases"))


QUERIES: list[tuple[str, InboxFilter]] = [
    ("newest page", InboxFilter()),
    ("red", InboxFilter(colour="red")),
    ("village + accepted", InboxFilter(village=VILLAGES[3], status="accepted")),
    ("staff + business", InboxFilter(staff="staff03", kind="business")),
    ("unassigned, door-to-door", InboxFilter(staff="-", mode="door_to_door")),
    ("name search", InboxFilter(q="王伟")),
    ("phone search", InboxFilter(q="13912345678")),
    ("case number", InboxFilter(q=f"{VILLAGES[5]}-20260101-BENCH001-000006")),
    ("page 200", InboxFilter(page=200)),
]


def time_inbox(sessions: sessionmaker[Session], repeat: int) -> list[tuple[str, float, float]]:
    """(query, p50 ms, p95 ms) for each inbox query."""
    today = date.today()
    figures = []
    for label, wanted in QUERIES:
        times = []
        for _ in range(repeat):
            with sessions() as session:
                started = time.perf_counter()
                inbox_page(session, TOWNSHIP, wanted, today)
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        figures.append((label, statistics.median(times), p95))
    return figures


# --- projection ------------------------------------------------------------------------------


def seed_store(store: SQLiteStore, events: int) -> int:
    """Cases with four events each (``events`` in all) in ``store``; the number of cases."""
    rng = random.Random(7)
    item = CatalogueItem(
        code="500109ZW0020", name="最低生活保障申请", kind=Kind.GOVERNMENT,
        handling_level=HandlingLevel.TOWNSHIP, modes=(Mode.AGENCY, Mode.WINDOW),
        department="区民政局", legal_limit_days=30, promised_limit_days=20,
    )  # fmt: skip
    cases = events // 4
    staff_origin = Origin(TOWNSHIP, "node0001")
    staff_clock = HlcClock(staff_origin.key, lambda: time.time_ns() // 1_000_000)
    pending: list[dict[str, Any]] = []
    for n in range(cases):
        village = VILLAGES[n % 20]
        origin = Origin(village, "kiosk001")
        clock = HlcClock(origin.key, lambda: time.time_ns() // 1_000_000)
        wall = datetime.now(CHINA_TIME) - timedelta(minutes=30 * (cases - n))
        case = new_case(
            origin=origin, counter=n * 2 + 1, hlc=clock.tick(), wall_time=wall, author="agent",
            village=village, township=TOWNSHIP, item=item, catalogue_version=1,
            applicant=Person(name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                             id_number=random_id(rng), phone="13800138000"),
            mode=Mode.AGENCY, handling_unit=TOWNSHIP,
        )  # fmt: skip
        submitted = new_event(
            case, Submitted(), origin=origin, counter=n * 2 + 2,
            hlc=clock.tick(after=case.stamp), wall_time=wall, author="agent",
        )  # fmt: skip
        after = submitted.stamp
        docs = [case_to_doc(case), event_to_doc(submitted)]
        for i, payload in enumerate(
            (Received(receiver=TOWNSHIP, received_at=wall), Accepted(),
             Assigned(staff="staff01", staff_name="工作人员01"))
        ):  # fmt: skip
            event = new_event(
                case, payload, origin=staff_origin, counter=n * 3 + i + 1,
                hlc=staff_clock.tick(after=after), wall_time=wall, author="staff01",
            )  # fmt: skip
            after = event.stamp
            docs.append(event_to_doc(event))
        pending += docs
        if len(pending) >= 2000:
            store.bulk_docs(pending)
            pending = []
    if pending:
        store.bulk_docs(pending)
    return cases


def time_projection(store: SQLiteStore, sessions: sessionmaker[Session]) -> tuple[float, int]:
    """Seconds to project the whole store into a fresh read model, and the changes read."""
    started = time.perf_counter()
    result = project(store, sessions, "bench", WorkCalendar(), date.today())
    return time.perf_counter() - started, result.changes


# --- main ------------------------------------------------------------------------------------


def with_database(kind: str, tmp: Path, work: Callable[[sessionmaker[Session]], Any]) -> Any:
    """Run ``work`` against a fresh township database of ``kind``, built by its migrations."""
    with throwaway_database(kind, tmp) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        try:
            return work(make_sessionmaker(engine))
        finally:
            engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    with tempfile.TemporaryDirectory(prefix="sanji-bench-") as folder:
        tmp = Path(folder)
        print(f"Inbox over {args.cases:,} cases ({args.repeat} runs per query)")

        def inbox(sessions: sessionmaker[Session]) -> list[tuple[str, float, float]]:
            started = time.perf_counter()
            seed_inbox(sessions, args.cases)
            print(f"  seeded in {time.perf_counter() - started:.1f} s")
            return time_inbox(sessions, args.repeat)

        for kind in kinds:
            print(f"  {kind}")
            (tmp / kind).mkdir()
            figures = with_database(kind, tmp / kind, inbox)
            print(f"  {'query':<28} {'p50 ms':>8} {'p95 ms':>8}")
            for label, p50, p95 in figures:
                mark = "" if p95 < 100 else "  (over 100 ms)"
                print(f"  {label:<28} {p50:8.1f} {p95:8.1f}{mark}")
        print(f"\nProjection of {args.events:,} events (target 5,000 events/s)")
        store = SQLiteStore(tmp / "store.sqlite3", "township")
        started = time.perf_counter()
        cases = seed_store(store, args.events)
        print(f"  store seeded with {cases:,} cases in {time.perf_counter() - started:.1f} s")
        for kind in kinds:
            (tmp / f"p-{kind}").mkdir()
            seconds, changes = with_database(
                kind, tmp / f"p-{kind}", lambda s: time_projection(store, s)
            )
            events = changes - cases
            print(f"  {kind:<11} {seconds:6.1f} s  {events / seconds:8,.0f} events/s "
                  f"({changes:,} documents)")  # fmt: skip
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
