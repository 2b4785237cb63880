"""Push and pull of 10,000 case documents: our replicator beside Node PouchDB's, same run.

Run from the repository root (about two minutes on 2 cores)::

    .venv/bin/python benchmarks/sync_throughput.py [--docs 10000] [--batch-sizes 100,500]
                                                    [--repeat 3] [--profile]

It starts its own in-memory pouchdb-server on loopback (stopped at the end), writes the cases
into a fresh embedded SQLite kiosk store (and, with the same revisions, into a PouchDB memory
database in the Node peer, tests/peers/pouchdb_peer.js) and, for each batch size:

* ours push          SQLiteStore -> fresh server database (RemoteDatabase plain, then gzip);
* PouchDB push       PouchDB memory database -> fresh server database;
* ours pull          server database -> fresh SQLiteStore (plain, then gzip);
* PouchDB pull       server database -> fresh PouchDB memory database;

and, as the server's ceilings, one ``_bulk_docs`` of all documents with ``new_edits=false``
(write) and one ``_changes`` plus one ``_bulk_get`` of all of them (read). Each figure is the
median of ``--repeat`` rounds; databases are deleted after each round.

``--rtt-ms 50`` adds the same push and pull of ``--rtt-docs`` documents through a loopback
proxy (benchmarks/latency_proxy.js) that adds that round-trip time, as on a village link.

Ours is timed around ``replicate()``, PouchDB's inside node around ``PouchDB.replicate()``.
Bytes are HTTP bodies as they cross the wire (after gzip), headers excluded: ours are
RemoteDatabase's ``bytes_sent``/``bytes_received``, PouchDB's are counted by wrapping node's
``http.request`` (bodies written; answers as the parser took them off the socket, so gzipped
when the server gzipped them). ``--profile`` adds a cProfile of our push and pull.
See benchmarks/README.md for the figures measured and what limits them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make core/, sync/ and tests/peers importable
    sys.path.insert(0, str(ROOT))

from core.cases import (  # noqa: E402
    MaterialState,
    MaterialStatus,
    Origin,
    Person,
    case_to_doc,
    new_case,
)
from core.catalogue import (  # noqa: E402
    CaseType,
    CatalogueItem,
    Eligibility,
    HandlingLevel,
    Kind,
    Material,
    Mode,
)
from core.clock import HlcClock  # noqa: E402
from sync.couch import connect, ensure_database  # noqa: E402
from sync.database import Doc  # noqa: E402
from sync.devserver import PouchServer  # noqa: E402
from sync.remote import RemoteDatabase  # noqa: E402
from sync.replicator import Replication, replicate  # noqa: E402
from sync.store import SQLiteStore  # noqa: E402
from tests.factories import resident_id  # noqa: E402
from tests.peers.pouchdb import PouchPeer  # noqa: E402

VILLAGE, TOWNSHIP = "500109110201", "500109110000"
KIOSK = Origin(VILLAGE, "k7f3a9")
ITEM = CatalogueItem(
    code="500109000015",
    name="高龄津贴申请",
    kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP,
    modes=(Mode.DOOR_TO_DOOR, Mode.AGENCY),
    department="澄江镇社会事务办",
    case_type=CaseType.PROMISED,
    promised_limit_days=15,
    legal_limit_days=20,
    door_to_door_for=(Eligibility.ELDERLY,),
    materials=(
        Material(key="id_card", name="身份证"),
        Material(key="hukou", name="户口簿"),
        Material(key="bank_card", name="银行卡", may_follow=True, follow_days=10),
    ),
)
START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "建国秀英桂兰德明志强淑珍玉梅海燕国华春花永福金凤"
ROADS = ["幸福路", "人民路", "新华街", "河滨路", "青杠坡", "石桥湾"]


# --- the documents ---------------------------------------------------------------------------


def build_cases(count: int, seed: int = 2026) -> list[Doc]:
    """``count`` case documents of about 1 KB as a kiosk writes them at intake
    (core.cases.new_case / case_to_doc), with varied applicants so gzip is not flattered."""
    rng = random.Random(seed)
    clock = HlcClock(KIOSK.key, lambda: int(START.timestamp() * 1000))
    docs = []
    for n in range(1, count + 1):
        name = rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, 2))
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(30 * 365))
        id_number = resident_id(f"500109{born:%Y%m%d}{rng.randrange(1000):03d}")
        wall = START + timedelta(minutes=7 * n)
        case = new_case(
            origin=KIOSK,
            counter=n,
            hlc=clock.tick(),
            wall_time=wall,
            author=rng.choice(["jg.v201", "lm.v201", "zh.v201"]),
            village=VILLAGE,
            township=TOWNSHIP,
            item=ITEM,
            catalogue_version=3,
            applicant=Person(
                name=name,
                id_number=id_number,
                phone=f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
                address=f"{rng.choice(ROADS)}{rng.randrange(1, 300)}号{rng.randrange(1, 7)}组",
                flags=(Eligibility.ELDERLY,),
            ),
            mode=Mode.DOOR_TO_DOOR,
            mode_reason="申请人年满80周岁，行动不便，预约上门办理",
            handling_unit=TOWNSHIP,
            materials=(
                MaterialState(key="id_card", name="身份证", status=MaterialStatus.PROVIDED),
                MaterialState(key="hukou", name="户口簿", status=MaterialStatus.PROVIDED),
                MaterialState(
                    key="bank_card",
                    name="银行卡",
                    status=MaterialStatus.TO_FOLLOW,
                    deadline=(wall + timedelta(days=10)).date(),
                ),
            ),
            note=f"代办员已核对原件，回执编号 {rng.randrange(10**8):08d}",
        )
        docs.append(case_to_doc(case))
    return docs


def json_bytes(doc: Doc) -> int:
    """A document's size as compact UTF-8 JSON."""
    return len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured replication (or ceiling call)."""

    name: str
    batch_size: int | None
    docs: int
    seconds: float
    requests: int
    bytes_sent: int
    bytes_received: int
    round: int = 0

    @property
    def rate(self) -> float:
        """Documents per second."""
        return self.docs / self.seconds


def _remote_run(name: str, batch_size: int | None, docs: int, seconds: float, db: Any) -> Run:
    """A Run with a RemoteDatabase's counters."""
    return Run(name, batch_size, docs, seconds, db.requests_sent, db.bytes_sent, db.bytes_received)


class Bench:
    """The server, a kiosk store and the PouchDB peer of one benchmark run.

    ``url`` is where both replicators reach the server (the server itself, or a latency proxy
    in front of it); ``tag`` names this bench's kiosk store file and PouchDB database."""

    def __init__(
        self,
        server: PouchServer,
        peer: PouchPeer,
        work: Path,
        docs: list[Doc],
        *,
        url: str | None = None,
        tag: str = "kiosk",
    ) -> None:
        self.server, self.peer, self.work, self.docs = server, peer, work, docs
        self.url, self.tag = url or server.url, tag
        self.couch = connect(server.url, timeout=300)
        self.kiosk = SQLiteStore(work / f"{tag}.sqlite3")
        answers = self.kiosk.bulk_docs(docs)
        assert all(a.get("ok") for a in answers)
        # The same documents with the same revisions in PouchDB's memory database ``tag``.
        self.with_revs = [{**d, "_rev": a["rev"]} for d, a in zip(docs, answers, strict=True)]
        for chunk in _chunks(self.with_revs, 2000):
            peer.bulk_docs(tag, chunk, new_edits=False)
        self.serial = 0
        self.server_dbs: list[str] = []
        self.peer_dbs: list[str] = []

    def fresh_db(self, prefix: str, *, gzip: bool = False) -> RemoteDatabase:
        """A new empty database on the server (deleted by ``clean``)."""
        self.serial += 1
        name = f"{self.tag}_{prefix}_{self.serial}"
        ensure_database(self.couch, name)
        self.server_dbs.append(name)
        return RemoteDatabase(self.url, name, gzip=gzip, timeout=300)

    def fresh_store(self) -> SQLiteStore:
        """A new empty kiosk store file."""
        self.serial += 1
        return SQLiteStore(self.work / f"{self.tag}_pulled_{self.serial}.sqlite3")

    def check(self, db: Any, expect: int) -> None:
        """The replica holds every document."""
        count = db.info()["doc_count"]
        if count != expect:
            raise AssertionError(f"{db!r} holds {count} documents, expected {expect}")

    def clean(self) -> None:
        """Delete the server's and the peer's databases made so far (frees their memory)."""
        for name in self.server_dbs:
            del self.couch[name]
        for name in self.peer_dbs:
            self.peer.command("destroy", db=name)
        self.server_dbs.clear()
        self.peer_dbs.clear()
        for path in self.work.glob(f"{self.tag}_pulled_*"):
            path.unlink()

    # -- ours ------------------------------------------------------------------------------

    def ours_push(self, batch_size: int, *, gzip: bool) -> tuple[Run, str]:
        """Our replicator: kiosk store -> fresh server database; also its name."""
        target = self.fresh_db("ours_push", gzip=gzip)
        began = time.perf_counter()
        result = replicate(Replication(self.kiosk, target, batch_size=batch_size))
        seconds = time.perf_counter() - began
        assert result.docs_written == len(self.docs), result
        self.check(target, len(self.docs))
        name = "ours push gzip" if gzip else "ours push"
        return _remote_run(name, batch_size, len(self.docs), seconds, target), target.name

    def ours_pull(self, source_name: str, batch_size: int, *, gzip: bool) -> Run:
        """Our replicator: server database -> fresh kiosk store."""
        source = RemoteDatabase(self.url, source_name, gzip=gzip, timeout=300)
        target = self.fresh_store()
        try:
            began = time.perf_counter()
            result = replicate(Replication(source, target, batch_size=batch_size))
            seconds = time.perf_counter() - began
            assert result.docs_written == len(self.docs), result
            self.check(target, len(self.docs))
        finally:
            target.close()
        name = "ours pull gzip" if gzip else "ours pull"
        return _remote_run(name, batch_size, len(self.docs), seconds, source)

    # -- PouchDB ---------------------------------------------------------------------------

    def pouch(self, name: str, source: str, target: str, batch_size: int) -> Run:
        """PouchDB.replicate between the peer's memory db and a server URL, timed in node."""
        result = self.peer.replicate(source, target, batch_size=batch_size)
        assert result["ok"] and result["docs_written"] == len(self.docs), result
        return Run(
            name,
            batch_size,
            len(self.docs),
            result["ms"] / 1000,
            result["requests"],
            result["body_bytes"],
            result["received_bytes"],
        )

    def pouch_push(self, batch_size: int) -> Run:
        """PouchDB: memory db -> fresh server database."""
        target = self.fresh_db("pouch_push")
        run = self.pouch("PouchDB push", self.tag, self.url + target.name, batch_size)
        self.check(target, len(self.docs))
        return run

    def pouch_pull(self, source_name: str, batch_size: int) -> Run:
        """PouchDB: server database -> fresh memory db."""
        self.serial += 1
        local = f"{self.tag}_pulled_{self.serial}"
        self.peer_dbs.append(local)
        run = self.pouch("PouchDB pull", self.url + source_name, local, batch_size)
        info = self.peer.command("info", db=local)
        assert info["doc_count"] == len(self.docs), info
        return run

    # -- the server's ceilings -------------------------------------------------------------

    def write_ceiling(self) -> Run:
        """One ``_bulk_docs`` (new_edits=false) of every document into a fresh database."""
        target = self.fresh_db("ceiling")
        began = time.perf_counter()
        errors = target.bulk_docs(self.with_revs, new_edits=False)
        seconds = time.perf_counter() - began
        assert not errors, errors[:3]
        self.check(target, len(self.docs))
        return _remote_run("_bulk_docs ×1", None, len(self.docs), seconds, target)

    def read_ceiling(self, source_name: str) -> Run:
        """One ``_changes`` (style=all_docs) and one ``_bulk_get`` of every document."""
        source = RemoteDatabase(self.url, source_name, timeout=300)
        began = time.perf_counter()
        rows = source.changes(style="all_docs")["results"]
        wanted = [{"id": r["id"], "rev": c["rev"]} for r in rows for c in r["changes"]]
        fetched = source.bulk_get(wanted, attachments=True)
        seconds = time.perf_counter() - began
        assert sum("ok" in item for r in fetched for item in r["docs"]) == len(self.docs)
        return _remote_run("_changes + _bulk_get ×1", None, len(self.docs), seconds, source)

    # -- one round -------------------------------------------------------------------------

    def round(
        self,
        number: int,
        batch_sizes: Sequence[int],
        keep: Callable[[Run], None],
        *,
        ceilings: bool = True,
    ) -> None:
        """Every measurement once (each Run marked with round ``number`` and handed to
        ``keep``), then delete what it made."""

        def report(run: Run) -> None:
            run.round = number
            keep(run)

        source = ""
        for batch_size in batch_sizes:
            run, source = self.ours_push(batch_size, gzip=False)
            report(run)
            steps: list[Callable[[], Run]] = [
                lambda b=batch_size: self.ours_push(b, gzip=True)[0],
                lambda b=batch_size: self.pouch_push(b),
                lambda b=batch_size, s=source: self.ours_pull(s, b, gzip=False),
                lambda b=batch_size, s=source: self.ours_pull(s, b, gzip=True),
                lambda b=batch_size, s=source: self.pouch_pull(s, b),
            ]
            for step in steps:
                report(step())
        if ceilings:
            report(self.write_ceiling())
            report(self.read_ceiling(source))
        self.clean()

    def warm_up(self) -> None:
        """A small push and pull by each side first: JIT, caches and connections warm."""
        store, pulled = SQLiteStore(self.work / f"{self.tag}_warm.sqlite3"), self.fresh_store()
        warm = f"{self.tag}_warm"
        try:
            store.bulk_docs(self.with_revs[:300], new_edits=False)
            target = self.fresh_db("warm")
            replicate(Replication(store, target))
            self.peer_dbs.append(warm)
            self.peer.replicate(self.url + target.name, warm)
            self.peer.replicate(warm, self.url + self.fresh_db("warm").name)
            replicate(Replication(RemoteDatabase(self.url, target.name), pulled))
        finally:
            store.close()
            pulled.close()
        self.clean()

    def profile(self, batch_size: int, top: int = 20) -> str:
        """cProfile of one plain push and one plain pull by our replicator, in this process
        and both its threads (the server's share shows as waiting on the socket)."""
        out = io.StringIO()
        pushed: list[str] = []
        for label, work in (
            ("push", lambda: pushed.append(self.ours_push(batch_size, gzip=False)[1])),
            ("pull", lambda: self.ours_pull(pushed[0], batch_size, gzip=False)),
        ):
            out.write(f"--- ours {label}, batch {batch_size}\n")
            stats = pstats.Stats(*_profiled(work), stream=out).strip_dirs().sort_stats("tottime")
            stats.print_stats(top)
        self.clean()
        return out.getvalue()

    def close(self) -> None:
        """Close the kiosk store."""
        self.kiosk.close()


def _profiled(work: Callable[[], object]) -> list[cProfile.Profile]:
    """Run ``work`` under cProfile, with one more profiler in each thread it starts (the
    replicator's reader thread); return them all."""
    profilers = [cProfile.Profile()]

    def start_here(*_: object) -> None:  # the first event of a new thread
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.enable()

    threading.setprofile(start_here)
    try:
        profilers[0].enable()
        work()
        profilers[0].disable()
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    return profilers


class LatencyProxy:
    """``benchmarks/latency_proxy.js``: a loopback proxy to the server that delays every
    chunk by ``one_way_ms`` each way (a separate node process, so it takes no time from ours)."""

    def __init__(self, upstream_port: int, one_way_ms: float) -> None:
        script = Path(__file__).resolve().parent / "latency_proxy.js"
        self.process = subprocess.Popen(
            ["node", str(script), str(upstream_port), str(one_way_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def url(self, server: PouchServer) -> str:
        """The server's URL (admin credentials in it) through this proxy."""
        return server.url.replace(f":{server.port}/", f":{self.port}/")

    def __enter__(self) -> LatencyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _chunks(items: Sequence[Doc], size: int) -> Iterable[list[Doc]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# --- output ----------------------------------------------------------------------------------


def median_runs(runs: list[Run]) -> list[Run]:
    """For each (name, batch size), in first-seen order, the run with the median rate."""
    groups: dict[tuple[str, int | None], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.name, run.batch_size), []).append(run)
    return [sorted(group, key=lambda r: r.rate)[len(group) // 2] for group in groups.values()]


def table(runs: list[Run], json_size: float) -> str:
    """Markdown table of the median runs. ``ours/PouchDB`` is the median over the rounds of
    ours docs/s divided by PouchDB's in the same round, direction and batch size (a round's
    runs are minutes apart at most, so a busy machine slows both); min–max is the spread."""
    rates: dict[tuple[str, int | None], list[float]] = {}
    by_round: dict[tuple[str, int | None, int], Run] = {}
    for run in runs:
        rates.setdefault((run.name, run.batch_size), []).append(run.rate)
        by_round[(run.name, run.batch_size, run.round)] = run
    lines = [
        "| run | batch | docs/s (median) | min–max | ours/PouchDB | requests/1000 docs "
        "| sent B/case | sent/JSON | received B/case |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in median_runs(runs):
        ratio = ""
        if r.name.startswith("ours"):
            pouch = f"PouchDB {r.name.split()[1]}"
            ratios = [
                run.rate / other.rate
                for run in runs
                if (run.name, run.batch_size) == (r.name, r.batch_size)
                and (other := by_round.get((pouch, run.batch_size, run.round)))
            ]
            ratio = f"{statistics.median(ratios):.2f}" if ratios else ""
        spread = rates[(r.name, r.batch_size)]
        lines.append(
            f"| {r.name} | {r.batch_size or '—'} | {r.rate:,.0f} "
            f"| {min(spread):,.0f}–{max(spread):,.0f} | {ratio} "
            f"| {1000 * r.requests / r.docs:.1f} | {r.bytes_sent / r.docs:,.0f} "
            f"| {r.bytes_sent / r.docs / json_size:.2f} | {r.bytes_received / r.docs:,.0f} |"
        )
    return "\n".join(lines)


def _load() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine skews the figures)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def report(run: Run) -> None:
    """One progress line."""
    print(
        f"  {run.name:<24} batch {run.batch_size or '—':>4}: {run.rate:8,.0f} docs/s "
        f"({run.seconds:6.2f} s, {run.requests} requests)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000, help="case documents (10,000)")
    parser.add_argument("--batch-sizes", default="100,500", help="comma-separated (100,500)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians reported (3)")
    parser.add_argument("--profile", action="store_true", help="cProfile our push and pull")
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=0,
        help="also run through a loopback proxy adding this round-trip time (off: 0)",
    )
    parser.add_argument("--rtt-docs", type=int, default=2000, help="documents for --rtt-ms")
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    began = time.monotonic()
    print(f"{os.cpu_count()} CPUs, load {_load()}; building {args.docs:,} cases…", flush=True)
    docs = build_cases(args.docs)
    json_size = sum(map(json_bytes, docs)) / len(docs)
    print(f"mean case document: {json_size:,.0f} B of compact JSON", flush=True)
    runs: list[Run] = []

    def keep(run: Run) -> None:
        runs.append(run)
        report(run)

    with (
        tempfile.TemporaryDirectory(prefix="sanji-bench-") as work,
        PouchServer() as server,
        PouchPeer() as peer,
    ):
        bench = Bench(server, peer, Path(work), docs)
        try:
            bench.warm_up()
            for number in range(1, args.repeat + 1):
                print(f"round {number} of {args.repeat}", flush=True)
                bench.round(number, batch_sizes, keep)
            print()
            print(table(runs, json_size))
            if args.rtt_ms:
                print(f"\nover a link with {args.rtt_ms:g} ms round trips, {args.rtt_docs:,} docs")
                slow: list[Run] = []

                def keep_slow(run: Run) -> None:
                    slow.append(run)
                    report(run)

                with LatencyProxy(server.port, args.rtt_ms / 2) as proxy:
                    few = docs[: args.rtt_docs]
                    far = Bench(server, peer, Path(work), few, url=proxy.url(server), tag="far")
                    try:
                        for number in range(1, args.repeat + 1):
                            far.round(number, batch_sizes, keep_slow, ceilings=False)
                    finally:
                        far.close()
                print()
                print(table(slow, json_size))
            if args.profile:
                print()
                print(bench.profile(batch_sizes[0]))
        finally:
            bench.close()
    print(f"\n{time.monotonic() - began:.0f} s in all; load now {_load()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
