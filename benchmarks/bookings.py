"""Citizens' home-visit bookings under load (issue 6): availability and booking through the
district's public pages, 50 concurrent clients on loopback for 10 s.

Run from the repository root (about a minute on 2 cores)::

    .venv/bin/python benchmarks/bookings.py [--seconds 10] [--clients 50]
                                            [--database sqlite|postgresql] [--book-share 0.3]

What runs, all on 127.0.0.1 and all real:

* two pouchdb-servers (``sync.devserver.PouchServer``, in memory), the district's and the
  township's, set up by ``sync.topology`` with their continuous replications;
* the township node (``township.app``) and the district server (``central.app``), each in its
  own process under uvicorn (so the clients' threads do not share their GIL), their SQL on
  SQLite files or, with ``--database postgresql``, on throwaway local PostgreSQL databases
  (``tests/sql.py``);
* the township offers ``--staff`` staff slots in both periods of every working day from
  tomorrow to the end of the booking window, published as ``visit_availability``;
* ``--clients`` client threads, each with its own ``httpx.Client`` (own cookie jar and CSRF
  token, own source address 127.0.0.<n>), that first fill in the form (``POST /visit``) and
  then, for ``--seconds``, loop: read the township's periods (``GET /visit/periods``, the
  public availability page), and with probability ``--book-share`` book a random free period
  through the pages' POST flow (``POST /visit/periods`` to choose, ``POST /visit/confirm`` to
  book, which calls the township's booking API; after a booking, ``POST /visit`` again for
  the next citizen, each with a fresh phone and address so the abuse caps do not bite).

It prints requests/s and p50/p95/max latency per kind, how each booking ended, and the
double-booking check: no staff slot held twice, no visit holding two slots or scheduled
twice, no period with more bookings than staff offered it, and every booking the district
calls scheduled held by that case on the township's calendar (0 problems expected).
See benchmarks/README.md for the figures measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make core/, central/ and tests/ importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from central.db import make_engine, make_sessionmaker, migrate  # noqa: E402
from central.db.models import Booking  # noqa: E402
from central.services import hierarchy, outbox  # noqa: E402
from central.services.nodes import register_node  # noqa: E402
from core.calendar import WorkCalendar  # noqa: E402
from core.cases import local_date  # noqa: E402
from sync.couch import connect, couch_errors  # noqa: E402
from sync.devserver import PouchServer, free_port  # noqa: E402
from sync.topology import setup_district  # noqa: E402
from tests.factories import resident_id  # noqa: E402
from tests.servers import join_district, publish_item  # noqa: E402
from township import db as township_db  # noqa: E402
from township.models import StaffAvailability, VisitBooking  # noqa: E402
from township.visits import Slot, publish_availability, set_offers, working_days  # noqa: E402

DISTRICT = "500109000000"
T = "500109102000"
A = "500109102001"
HARDSHIP = "500109DW0004"  # 困难党员帮扶申请: township-handled, door-to-door for the elderly
CSRF = "sanji_csrf"
_FREE = re.compile(r'value="(\d{4}-\d{2}-\d{2}\|(?:am|pm))"\s+>')
KINDS = ("availability", "choose", "book", "form")


# --- the network ------------------------------------------------------------------------------


def _wait(check: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def _has(url: str, db: str, doc_id: str) -> bool:
    with couch_errors():
        return connect(url)[db].get(doc_id) is not None


@dataclass
class Network:
    """What the benchmark set up: servers, SQL, offers and the two app processes."""

    district: PouchServer
    township: PouchServer
    district_sql: str
    township_sql: str
    days: list[date]
    staff: dict[str, str]
    district_url: str = ""
    node_url: str = ""

    @property
    def slots(self) -> int:
        """How many staff slots the township offers."""
        return len(self.days) * 2 * len(self.staff)


def set_up(
    district: PouchServer,
    township: PouchServer,
    district_sql: str,
    township_sql: str,
    staff_count: int,
) -> Network:
    """The district and township CouchDB and SQL, the catalogue, the offers, the node's key."""
    d = connect(district.url)
    setup_district(district.url)
    migrate(district_sql)
    sessions = make_sessionmaker(make_engine(district_sql))
    with sessions() as session:
        hierarchy.add_unit(session, DISTRICT, "北碚区")
        hierarchy.add_unit(session, T, "澄江镇")
        hierarchy.add_unit(session, A, "示例村")
    outbox.flush(sessions, lambda: d)
    publish_item(district.url, HARDSHIP)
    join_district(district, township.url, T)

    township_db.migrate(township_sql)
    township_sessions = make_sessionmaker(make_engine(township_sql))
    today = local_date(datetime.now(UTC))
    calendar = WorkCalendar()
    # The booking window is 14 working days, today included; today's periods may be past
    # their cutoff, so offer from tomorrow.
    days = [day for day in working_days(calendar, today, 14) if day > today]
    staff = {f"staff_{n:02d}": f"员工{n:02d}" for n in range(staff_count)}
    offered = {Slot(day, period, who) for day in days for period in ("am", "pm") for who in staff}
    set_offers(township_sessions, calendar, today, staff, days, offered)
    publish_availability(township_sessions, connect(township.url)["township"], T, days)

    net = Network(district, township, district_sql, township_sql, days, staff)
    net.node_url = f"http://127.0.0.1:{free_port()}"
    with sessions() as session:
        register_node(session, T, net.node_url)
    outbox.flush(sessions, lambda: d)
    _wait(lambda: _has(township.url, "directory", f"township_node:{T}"), "the node's key hash")
    for day in days:
        doc_id = f"visit_availability:{T}:{day.isoformat()}"
        _wait(lambda doc_id=doc_id: _has(district.url, "district", doc_id), "availability up")
    return net


def serve(which: str, config: dict[str, Any]) -> None:
    """The child process: one app under uvicorn (``--serve district|township``)."""
    import uvicorn

    if which == "township":
        from township.app import create_app as create_township_app
        from township.settings import TownshipSettings

        app: Any = create_township_app(
            TownshipSettings(T, config["couch"], database_url=config["sql"])
        )
    else:
        from central.app import create_app
        from central.settings import Settings

        extra = {"township_timeout": config["township_timeout"]}
        # Room for the load if a per-address limit of public posts is in place (each client
        # posts from its own address, so this only matters for long runs).
        if "public_post_limit" in {f.name for f in fields(Settings)}:
            extra["public_post_limit"] = 1_000_000
        app = create_app(Settings(database_url=config["sql"], couchdb_url=config["couch"], **extra))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per township call
    uvicorn.run(app, host="127.0.0.1", port=config["port"], log_level="warning")


@contextmanager
def _process(which: str, config: dict[str, Any], probe: str, log: Path) -> Iterator[None]:
    """Run one app in a child process (its output to ``log``) until the block ends."""
    command = [sys.executable, __file__, "--serve", which, "--config", json.dumps(config)]
    output = log.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{config['port']}{probe}"

        def up() -> bool:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the {which} server exited ({process.returncode}):\n{tail}")
            try:
                return httpx.get(url, timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        _wait(up, f"the {which} server")
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()


# --- the clients --------------------------------------------------------------------------------


@dataclass
class Tally:
    """One client's figures."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    codes: list[str] = field(default_factory=list)


class Citizen:
    """One client thread: its own cookies, CSRF token and source address."""

    def __init__(self, url: str, number: int, book_share: float, pick: str, seed: int) -> None:
        self.number = number
        self.book_share = book_share
        self.pick = pick
        self.rng = random.Random(seed * 1000 + number)
        self.client = httpx.Client(
            base_url=url,
            transport=httpx.HTTPTransport(local_address=f"127.0.0.{number + 2}"),
            timeout=60,
            follow_redirects=False,
        )
        self.tally = Tally()
        self.people = 0

    def _timed(self, kind: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        start = time.perf_counter()
        response = call()
        self.tally.latencies[kind].append(time.perf_counter() - start)
        self.tally.statuses[(kind, response.status_code)] += 1
        return response

    def _post(self, kind: str, path: str, **data: str) -> httpx.Response:
        body = {**data, "_csrf_token": self.client.cookies.get(CSRF, "")}
        return self._timed(kind, lambda: self.client.post(path, data=body))

    def fill_in(self) -> None:
        """Step 1 for a new person (a fresh phone and address each time)."""
        n, i = self.people, self.number
        self.people += 1
        self._post(
            "form",
            "/visit",
            item_code=HARDSHIP,
            village=A,
            person_name=f"李{i}-{n}",
            id_number=resident_id(f"50010919400101{n % 1000:03d}"),
            address=f"示例村{i}组{n}号",
            qualification="elderly",
            qualification_note="",
            phone=f"139{i:02d}{n:06d}",
        )

    def run(self, start: threading.Barrier, seconds: float) -> Tally:
        """Loop reading the periods and sometimes booking one until the time is up."""
        with self.client:
            self.client.get("/visit")
            self.fill_in()
            self.tally = Tally()  # the warm-up is not counted
            start.wait()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                page = self._timed("availability", lambda: self.client.get("/visit/periods"))
                free = _FREE.findall(page.text)
                if not free or self.rng.random() >= self.book_share:
                    continue
                slot = free[0] if self.pick == "first" else self.rng.choice(free)
                self._post("choose", "/visit/periods", slot=slot)
                done = self._post("book", "/visit/confirm")
                self._count(done)
        return self.tally

    def _count(self, done: httpx.Response) -> None:
        text = done.text
        if done.status_code == 200 and "预约成功" in text:
            outcome = "scheduled"
        elif done.status_code == 200:
            outcome = "requested"  # the township did not answer in time: it confirms later
        elif done.status_code in (400, 409) and "已约满" in text:
            outcome = f"refused: period taken ({done.status_code})"
        else:
            outcome = f"other ({done.status_code})"
        self.tally.outcomes[outcome] += 1
        if done.status_code == 200:
            found = re.search(r'id="booking-code">([0-9A-Z]{4})-([0-9A-Z]{4})<', text)
            if found:
                self.tally.codes.append(found[1] + found[2])
            self.fill_in()


def load(url: str, clients: int, seconds: float, book_share: float, pick: str, seed: int) -> Tally:
    """Run the clients together for ``seconds``; their tallies merged."""
    citizens = [Citizen(url, n, book_share, pick, seed) for n in range(clients)]
    start = threading.Barrier(clients + 1)
    tallies: list[Tally] = []
    lock = threading.Lock()

    def one(citizen: Citizen) -> None:
        tally = citizen.run(start, seconds)
        with lock:
            tallies.append(tally)

    threads = [threading.Thread(target=one, args=(c,), daemon=True) for c in citizens]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    total = Tally()
    for tally in tallies:
        for kind, values in tally.latencies.items():
            total.latencies[kind] += values
        total.statuses.update(tally.statuses)
        total.outcomes.update(tally.outcomes)
        total.codes += tally.codes
    return total


# --- the double-booking check ---------------------------------------------------------------


def check(net: Network) -> dict[str, int]:
    """Count what must be zero: slots held twice, visits holding two slots or scheduled twice,
    periods over capacity, and district bookings the township's calendar does not hold."""
    township = make_sessionmaker(make_engine(net.township_sql))
    district = make_sessionmaker(make_engine(net.district_sql))
    with township() as session:
        held = session.execute(
            select(
                VisitBooking.staff,
                VisitBooking.day,
                VisitBooking.period,
                VisitBooking.case_id,
                VisitBooking.visit_id,
            )
        ).all()
        offered = {
            (day, period): n
            for day, period, n in session.execute(
                select(StaffAvailability.day, StaffAvailability.period, func.count()).group_by(
                    StaffAvailability.day, StaffAvailability.period
                )
            ).all()
        }
    with district() as session:
        scheduled = session.execute(
            select(Booking.case_id, Booking.visit_id, Booking.day, Booking.period).where(
                Booking.status == "scheduled"
            )
        ).all()
    with couch_errors():
        rows = connect(net.township.url)["township"].view("_all_docs", include_docs=True)
        events = Counter(
            (r.doc.get("payload") or {}).get("visit_id")
            for r in rows
            if r.doc and r.doc.get("kind") == "visit_scheduled"
        )
    slots = Counter((s, d, p) for s, d, p, _, _ in held)
    visits = Counter((c, v) for _, _, _, c, v in held)
    per_period = Counter((d, p) for _, d, p, _, _ in held)
    district_per_period = Counter((d, p) for _, _, d, p in scheduled)
    on_calendar = {(c, v, d, p) for _, d, p, c, v in held}
    return {
        "staff slot held by two visits": sum(n - 1 for n in slots.values() if n > 1),
        "visit holding two slots": sum(n - 1 for n in visits.values() if n > 1),
        "visit_scheduled written twice for a visit": sum(n - 1 for n in events.values() if n > 1),
        "township period over its offered staff": sum(
            max(0, n - offered.get(k, 0)) for k, n in per_period.items()
        ),
        "district period over the offered staff": sum(
            max(0, n - offered.get(k, 0)) for k, n in district_per_period.items()
        ),
        "district 'scheduled' not on the township's calendar": sum(
            (c, v, d, p) not in on_calendar for c, v, d, p in scheduled
        ),
        "_township bookings": len(held),
        "_district scheduled": len(scheduled),
        "_visit_scheduled events": sum(events.values()),
    }


# --- the report -----------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(args: argparse.Namespace, net: Network, total: Tally, problems: dict[str, int]) -> None:
    """Print the figures."""
    seconds = args.seconds
    requests = sum(len(v) for v in total.latencies.values())
    print(
        f"\n{args.clients} clients, {seconds:g} s, SQL {args.database}, "
        f"{len(net.staff)} staff × {len(net.days)} days × 2 periods = {net.slots} slots, "
        f"pick {args.pick}; "
        "through the public pages over HTTP (each client its own cookies and CSRF token)"
    )
    print(f"all requests: {requests} in {seconds:g} s = {requests / seconds:.1f} req/s")
    print(f"{'kind':<14}{'count':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  statuses")
    for kind in KINDS:
        values = total.latencies.get(kind, [])
        statuses = ", ".join(
            f"{code}×{n}" for (k, code), n in sorted(total.statuses.items()) if k == kind
        )
        print(
            f"{kind:<14}{len(values):>7}{len(values) / seconds:>8.1f}{_ms(values, 0.5):>9.0f}"
            f"{_ms(values, 0.95):>9.0f}{1000 * max(values, default=0):>9.0f}  {statuses}"
        )
    every = [v for values in total.latencies.values() for v in values]
    print(
        f"{'all':<14}{len(every):>7}{len(every) / seconds:>8.1f}{_ms(every, 0.5):>9.0f}"
        f"{_ms(every, 0.95):>9.0f}{1000 * max(every, default=0):>9.0f}"
    )
    print("bookings: " + ", ".join(f"{k} {n}" for k, n in sorted(total.outcomes.items())))
    print(
        f"bookings made: {sum(n for k, n in total.outcomes.items() if k == 'scheduled')} "
        f"scheduled at once (codes {len(set(total.codes))} distinct)"
    )
    print(
        f"township calendar: {problems['_township bookings']} slots taken; district: "
        f"{problems['_district scheduled']} scheduled; visit_scheduled events: "
        f"{problems['_visit_scheduled events']}"
    )
    double = {k: n for k, n in problems.items() if not k.startswith("_")}
    for name, n in double.items():
        print(f"  {name}: {n}")
    print(f"double bookings: {sum(double.values())} (0 expected)")


def main(argv: list[str] | None = None) -> int:
    """Set up the network, run the load, check and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--book-share",
        type=float,
        default=0.3,
        help="chance that a client books after reading the periods",
    )
    parser.add_argument(
        "--pick",
        choices=("random", "first"),
        default="random",
        help="which free period a client books: any (random) or the earliest (first: everyone "
        "competes for the same period until it fills)",
    )
    parser.add_argument("--staff", type=int, default=30, help="staff offering every slot")
    parser.add_argument("--township-timeout", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", choices=("district", "township"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, json.loads(args.config))
        return 0
    if not 1 <= args.clients <= 250:
        parser.error("--clients: 1 to 250 (one loopback source address each)")
    from tests.sql import throwaway_database

    started = time.monotonic()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sanji-bench-")))
        (tmp / "d").mkdir()
        (tmp / "t").mkdir()
        district_sql = stack.enter_context(throwaway_database(args.database, tmp / "d"))
        township_sql = stack.enter_context(throwaway_database(args.database, tmp / "t"))
        district = stack.enter_context(PouchServer())
        township = stack.enter_context(PouchServer())
        net = set_up(district, township, district_sql, township_sql, args.staff)
        node_port = int(net.node_url.rsplit(":", 1)[1])
        stack.enter_context(
            _process(
                "township",
                {"couch": township.url, "sql": township_sql, "port": node_port},
                "/login",
                tmp / "township.log",
            )
        )
        district_port = free_port()
        stack.enter_context(
            _process(
                "district",
                {
                    "couch": district.url,
                    "sql": district_sql,
                    "port": district_port,
                    "township_timeout": args.township_timeout,
                },
                "/visit",
                tmp / "district.log",
            )
        )
        print(
            f"set up in {time.monotonic() - started:.1f} s; load for {args.seconds:g} s …",
            flush=True,
        )
        url = f"http://127.0.0.1:{district_port}"
        total = load(url, args.clients, args.seconds, args.book_share, args.pick, args.seed)
        problems = check(net)
        report(args, net, total, problems)
        district.check_alive()
        township.check_alive()
    print(
        f"total run time {time.monotonic() - started:.1f} s (load average {os.getloadavg()[0]:.1f})"
    )
    return 1 if any(n for k, n in problems.items() if not k.startswith("_")) else 0


if __name__ == "__main__":
    sys.exit(main())
