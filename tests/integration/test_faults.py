"""Faults: a kiosk killed mid-sync, a link cut mid-batch, a kiosk clock a year fast.

Real processes, sockets and servers, nothing mocked: the kiosk stand-in
(tests/kiosk_process.py) runs as a child process and is killed with SIGKILL at chosen points;
a loopback TCP proxy (tests/tcpproxy.py) in front of pouchdb-server resets, truncates, refuses
and stalls connections under ``replicate_until_done``; two hybrid logical clocks, one a year
fast, write one case across replications.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.calendar import WorkCalendar
from core.cases import (
    Accepted,
    Case,
    Completed,
    Delivered,
    Delivery,
    Origin,
    Received,
    Recipient,
    Submitted,
    case_to_doc,
    event_to_doc,
    local_date,
    new_case,
    new_event,
    new_instance_id,
)
from core.catalogue import Mode
from core.clock import DAY_MS, HlcClock
from core.fold import CaseState, CaseStatus, Effect, fold
from sync.couch import connect, ensure_database
from sync.database import Database, Doc
from sync.errors import CouchUnavailable, DocNotFound
from sync.remote import RemoteDatabase
from sync.replicator import Replication, ReplicationResult, replicate, replicate_until_done
from sync.store import SQLiteStore
from tests.conftest import CouchUnderTest
from tests.kiosk_process import ITEM, TOWNSHIP, VILLAGE, KioskProcess, applicant, write_cases
from tests.tcpproxy import TcpProxy

YEAR_MS = 365 * DAY_MS


# --- helpers --------------------------------------------------------------------------------


def snapshot(db: Database) -> dict[str, tuple[str, list[str]]]:
    """Every document's winner and sorted leaves (deleted ones included); each id once."""
    state: dict[str, tuple[str, list[str]]] = {}
    since: Any = 0
    while page := db.changes(since=since, limit=100, style="all_docs")["results"]:
        for row in page:
            assert row["id"] not in state, f"{row['id']} listed twice in _changes"
            leaves = sorted(i["ok"]["_rev"] for i in db.open_revs(row["id"], "all") if "ok" in i)
            try:
                winner = db.get(row["id"])["_rev"]
            except DocNotFound:
                winner = "deleted"
            state[row["id"]] = (winner, leaves)
        since = page[-1]["seq"]
    return state


def assert_exactly_once(server: Database, store: Database, acknowledged: dict[str, str]) -> None:
    """The server holds every acknowledged document once, at the revision the kiosk gave it,
    with no second leaf, and nothing else; the kiosk's store holds the same."""
    on_server = snapshot(server)
    assert on_server == snapshot(store)
    assert on_server == {doc_id: (rev, [rev]) for doc_id, rev in acknowledged.items()}
    assert server.info()["doc_count"] == len(acknowledged)


@pytest.fixture
def server_db(couch_server: CouchUnderTest) -> Iterator[str]:
    """The name of a new, empty database on the server; checks the server survived."""
    name = couch_server.database_name("kiosk")
    ensure_database(connect(couch_server.url), name)
    yield name
    couch_server.check_alive()


@pytest.fixture
def proxy(couch_server: CouchUnderTest) -> Iterator[TcpProxy]:
    """A fault-injecting TCP proxy in front of the server."""
    with TcpProxy(couch_server.url) as tcp:
        yield tcp


@pytest.fixture
def kiosk_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A kiosk store holding 20 cases with their ``submitted`` events (40 documents)."""
    store = SQLiteStore(tmp_path / "kiosk.sqlite3")
    write_cases(store, 20)
    yield store
    store.close()


# --- 1. kill -9 mid-sync --------------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Callable[..., KioskProcess]]:
    """Start kiosk processes; any still running when the test ends is killed."""
    started: list[KioskProcess] = []

    def start(**options: Any) -> KioskProcess:
        started.append(KioskProcess(**options))
        return started[-1]

    yield start
    for process in started:
        process.close()


CASES = 12  # 24 documents: 6 batches of 4


@pytest.mark.parametrize("kill_at", ["between_batches", "after_bulk_docs", "anywhere"])
def test_kill_9_mid_push_loses_nothing_duplicates_nothing_and_resumes(
    kill_at: str,
    spawn: Callable[..., KioskProcess],
    couch_server: CouchUnderTest,
    server_db: str,
    tmp_path: Path,
) -> None:
    """A kiosk killed while pushing resumes from its checkpoint; every acknowledged case is on
    the server once. ``between_batches``: killed after batch 1 was checkpointed;
    ``after_bulk_docs``: batch 2 reached the server but was not checkpointed; ``anywhere``:
    killed right after batch 1's line, wherever the kiosk then is."""
    store_path = tmp_path / "kiosk.sqlite3"
    kiosk = functools.partial(
        spawn, store=store_path, url=couch_server.url, db=server_db, batch_size=4
    )
    total = 2 * CASES
    if kill_at == "between_batches":
        first = kiosk(cases=CASES, stall_after_batch=1)
        first.wait_for(lambda m: m["event"] == "batch")
    elif kill_at == "after_bulk_docs":
        first = kiosk(cases=CASES, stall_after_write=2)
        first.wait_for(lambda m: m["event"] == "written" and m["writes"] == 2)
    else:
        first = kiosk(cases=CASES, pause=0.02)
        first.wait_for(lambda m: m["event"] == "batch")
    first.kill()
    acknowledged = first.acknowledged
    assert len(acknowledged) == total  # every write was acknowledged before the push began
    lines = first.of("batch")
    assert lines, "killed before the first checkpoint"

    resumed = kiosk().finish()
    # It resumed from a checkpoint, not from the start...
    assert resumed["start_seq"] >= lines[-1]["last_seq"] > 0
    assert resumed["docs_read"] <= total - lines[-1]["docs_read"] < total
    if kill_at == "between_batches":
        assert len(lines) == 1
        assert resumed["start_seq"] == lines[0]["last_seq"]
        assert resumed["docs_read"] == resumed["docs_written"] == total - 4
    elif kill_at == "after_bulk_docs":
        # ...and did not send again the batch that was on the server but not checkpointed.
        assert len(lines) == 1 and len(first.of("written")) == 2
        assert resumed["start_seq"] == lines[0]["last_seq"]
        assert resumed["docs_read"] == total - 4
        assert resumed["docs_written"] == total - 8
    third = kiosk().finish()
    assert (third["docs_read"], third["docs_written"]) == (0, 0)
    assert third["start_seq"] == resumed["last_seq"]

    with SQLiteStore(store_path) as store:
        assert_exactly_once(RemoteDatabase(couch_server.url, server_db), store, acknowledged)


def test_kill_9_mid_pull_leaves_a_store_that_opens_and_completes(
    spawn: Callable[..., KioskProcess],
    couch_server: CouchUnderTest,
    server_db: str,
    tmp_path: Path,
) -> None:
    """A replacement kiosk restoring its village's cases is killed three times mid-pull, at
    different moments of a batch; each time its store passes SQLite's integrity check, opens,
    and holds only whole documents the server has. The fourth run resumes and completes; a
    fifth has nothing to do."""
    spawn(
        store=tmp_path / "old.sqlite3", url=couch_server.url, db=server_db, cases=15, batch_size=50
    ).finish()
    on_server = snapshot(RemoteDatabase(couch_server.url, server_db))
    assert len(on_server) == 30

    path = tmp_path / "replacement.sqlite3"
    pull = functools.partial(
        spawn, store=path, url=couch_server.url, db=server_db, direction="pull", batch_size=3
    )
    starts: list[Any] = []
    for delay in (0.0, 0.01, 0.025):
        run = pull(pause=0.03)
        starts.append(run.wait_for(lambda m: m["event"] == "batch")["start_seq"])
        time.sleep(delay)  # into the next batch's work, or its pause
        run.kill()
        with contextlib.closing(sqlite3.connect(path)) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        with SQLiteStore(path) as store:
            held = snapshot(store)
        assert held and all(on_server[doc_id] == leaves for doc_id, leaves in held.items())
    assert starts[0] == 0 and all(start != 0 for start in starts[1:])

    last = pull().finish()
    assert last["start_seq"] != 0 and last["docs_read"] < 30
    assert pull().finish()["docs_read"] == 0
    with SQLiteStore(path) as store:
        assert snapshot(store) == on_server


# --- 2. a link cut mid-batch ----------------------------------------------------------------


def _push(
    store: Database, proxy: TcpProxy, couch_url: str, name: str, timeout: float
) -> Replication:
    """A push from ``store`` to database ``name`` through the proxy, in batches of 5."""
    target = RemoteDatabase(proxy.url(couch_url), name, timeout=timeout)
    return Replication(store, target, batch_size=5)


def test_link_cut_mid_batch_retries_and_completes_exactly_once(
    kiosk_store: SQLiteStore, proxy: TcpProxy, couch_server: CouchUnderTest, server_db: str
) -> None:
    """After each batch the link fails in another way; every failure ends one attempt as
    CouchUnavailable, the next resumes from the checkpoint, and the server ends up with every
    document once. Cuts come twice where couchdb-python's own single retry would hide one."""
    bulk_docs = f"POST /{server_db}/_bulk_docs".encode()

    def link_drops() -> None:
        proxy.reset_all()
        proxy.drop_next(1)

    def server_goes_away() -> None:
        proxy.reset_all()
        proxy.refuse()

    faults: list[Callable[[], None]] = [
        # the upload of a batch is cut short (RST): the server stores nothing
        lambda: proxy.cut(bulk_docs, request_bytes=400, times=2),
        # the batch is stored, the answer lost (RST): the retry must not write it again
        lambda: proxy.cut(bulk_docs, response_bytes=0, times=2),
        # the answer is cut in its header block (FIN): couch.AnswerCutOff
        lambda: proxy.cut(bulk_docs, response_bytes=40, reset=False),
        # the _revs_diff answer is cut in its body (FIN): IncompleteRead
        lambda: proxy.cut(f"/{server_db}/_revs_diff".encode(), response_bytes=260, reset=False),
        # the link drops under the open connections, and the next new one fails too
        link_drops,
        # the server end goes away: connections are refused until the next retry
        server_goes_away,
    ]
    armed: list[int] = []
    written: dict[str, int] = {}  # documents each attempt counted as written

    def progress(result: ReplicationResult) -> None:
        written[result.session_id] = result.docs_written
        if len(armed) < len(faults):
            faults[len(armed)]()
            armed.append(result.batches)

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        proxy.restore()

    began = time.monotonic()
    rep = _push(kiosk_store, proxy, couch_server.url, server_db, timeout=5.0)
    result = replicate_until_done(rep, progress, attempts=10, first_delay=0.2, sleep=sleep)
    elapsed = time.monotonic() - began

    assert len(armed) == len(faults) and proxy.pending_cuts == 0
    assert proxy.cuts == 6 and proxy.dropped == 1
    assert len(sleeps) == len(faults)  # each fault failed exactly one attempt
    assert all(0 <= pause <= 0.2 * 2**i for i, pause in enumerate(sleeps))  # jittered backoff
    assert result.doc_write_failures == 0 and not result.failures
    # The two batches whose answers were lost were stored once: no attempt sent them again.
    written[result.session_id] = result.docs_written
    assert sum(written.values()) == 40 - 2 * 5
    assert elapsed < 10, "no attempt should have waited for a socket timeout"
    server = RemoteDatabase(couch_server.url, server_db)
    assert_exactly_once(server, kiosk_store, {d: w for d, (w, _) in snapshot(kiosk_store).items()})


def test_half_open_link_times_out_as_unavailable_then_recovers(
    kiosk_store: SQLiteStore, proxy: TcpProxy, couch_server: CouchUnderTest, server_db: str
) -> None:
    """A link that accepts but never answers: the socket timeout fires and the replication
    reports CouchUnavailable within about the timeout, at the start and mid-batch; once the
    link is back the next attempt completes."""
    timeout = 1.0
    proxy.blackhole()
    began = time.monotonic()
    with pytest.raises(CouchUnavailable):
        replicate(_push(kiosk_store, proxy, couch_server.url, server_db, timeout))
    assert timeout * 0.9 <= time.monotonic() - began < timeout * 2.5
    proxy.restore()

    stalled_at: list[float] = []

    def progress(result: ReplicationResult) -> None:
        if not stalled_at:  # after the first batch, the link stalls under the open connection
            proxy.blackhole()
            stalled_at.append(time.monotonic())

    noticed_after: list[float] = []

    def sleep(seconds: float) -> None:
        noticed_after.append(time.monotonic() - stalled_at[0])
        proxy.restore()

    rep = _push(kiosk_store, proxy, couch_server.url, server_db, timeout)
    replicate_until_done(rep, progress, first_delay=0.1, sleep=sleep)
    # Usually one retry; on a loaded machine a second one, when a request already in flight
    # on the stalled connection times out after the link is back (the pool then drops it).
    assert 1 <= len(noticed_after) <= 2
    assert timeout * 0.9 <= noticed_after[0] < timeout * 2.5
    server = RemoteDatabase(couch_server.url, server_db)
    assert_exactly_once(server, kiosk_store, {d: w for d, (w, _) in snapshot(kiosk_store).items()})


def test_lost_answer_to_a_checkpoint_write_is_survived(
    kiosk_store: SQLiteStore, proxy: TcpProxy, couch_server: CouchUnderTest, server_db: str
) -> None:
    """The target stores a checkpoint but its answer is lost: the replication still completes."""
    checkpoint = f"PUT /{server_db}/_local/".encode()
    armed: list[bool] = []

    def progress(result: ReplicationResult) -> None:
        if not armed:
            proxy.cut(checkpoint, response_bytes=0)
            armed.append(True)

    rep = _push(kiosk_store, proxy, couch_server.url, server_db, timeout=5.0)
    replicate_until_done(rep, progress, first_delay=0.1, sleep=lambda _: None)
    server = RemoteDatabase(couch_server.url, server_db)
    assert snapshot(server) == snapshot(kiosk_store)


# --- 3. a kiosk clock a year fast -----------------------------------------------------------


def _case_docs(db: Database) -> tuple[Doc, list[Doc]]:
    """The one case document and its event documents in ``db``."""
    case: Doc | None = None
    events: list[Doc] = []
    since: Any = 0
    while page := db.changes(since=since, limit=50, include_docs=True)["results"]:
        for row in page:
            if row["doc"].get("type") == "case":
                case = row["doc"]
            elif row["doc"].get("type") == "case_event":
                events.append(row["doc"])
        since = page[-1]["seq"]
    assert case is not None
    return case, events


def test_kiosk_clock_a_year_fast_is_ordered_causally_and_flagged(
    couch_server: CouchUnderTest, server_db: str, tmp_path: Path
) -> None:
    """A kiosk whose clock runs 365 days fast and the township write one case across
    replications. The township's ``received`` event measures and flags the skew; every event
    sorts after the ones its writer had seen, so both replicas fold the same states in causal
    order, list the fast clock in ``skewed_clocks``, and the township's clock moved at most a
    day ahead of its own time."""
    today = local_date(datetime.now(UTC))

    def real_ms() -> int:
        return int(time.time() * 1000)

    def fast_ms() -> int:
        return real_ms() + YEAR_MS

    def wall(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    kiosk_origin = Origin(VILLAGE, new_instance_id())
    township_origin = Origin(TOWNSHIP, new_instance_id())
    kiosk_clock = HlcClock(kiosk_origin.key, fast_ms)
    township_clock = HlcClock(township_origin.key, real_ms)
    counters = {kiosk_origin: 0, township_origin: 0}

    kiosk = SQLiteStore(tmp_path / "kiosk.sqlite3")
    township = RemoteDatabase(couch_server.url, server_db)
    push = Replication(kiosk, township)
    pull = Replication(township, kiosk)

    def state_at(db: Database) -> CaseState:
        case_doc, events = _case_docs(db)
        return fold(case_doc, events, WorkCalendar(), today=today)

    def write(db: Database, case: Case, payload: Any, origin: Origin, clock: HlcClock) -> None:
        """An event stamped after everything its writer's replica holds of the case."""
        counters[origin] += 1
        stamp = clock.tick(after=state_at(db).last_stamp)
        event = new_event(
            case,
            payload,
            origin=origin,
            counter=counters[origin],
            hlc=stamp,
            wall_time=wall(stamp.wall_ms if origin is kiosk_origin else real_ms()),
            author="jg.v201" if origin is kiosk_origin else "ts.chen",
        )
        db.put(event_to_doc(event))

    # The kiosk opens the case and submits it, its stamps a year ahead.
    counters[kiosk_origin] += 1
    stamp = kiosk_clock.tick()
    case = new_case(
        origin=kiosk_origin,
        counter=counters[kiosk_origin],
        hlc=stamp,
        wall_time=wall(stamp.wall_ms),
        author="jg.v201",
        village=VILLAGE,
        township=TOWNSHIP,
        item=ITEM,
        catalogue_version=1,
        applicant=applicant(),
        mode=Mode.AGENCY,
        handling_unit=TOWNSHIP,
    )
    kiosk.put(case_to_doc(case))
    write(kiosk, case, Submitted(), kiosk_origin, kiosk_clock)
    replicate(push)

    # The township receives it, measuring the kiosk's clock, then accepts and completes it.
    seen = state_at(township).last_stamp
    assert seen.node == kiosk_origin.key
    merge = township_clock.receive(seen)
    assert merge.clamped and merge.skew_ms > YEAR_MS - DAY_MS
    received = Received(
        receiver=TOWNSHIP,
        received_at=wall(real_ms()),
        sender=kiosk_origin.key,
        sender_skew_ms=merge.skew_ms,
        skew_clamped=merge.clamped,
    )
    write(township, case, received, township_origin, township_clock)
    write(township, case, Accepted(notice_no="受理〔2026〕1号"), township_origin, township_clock)
    write(
        township,
        case,
        Completed(result="准予发放", delivery=Delivery.VILLAGE_AGENT),
        township_origin,
        township_clock,
    )
    # Its clock followed the kiosk at most a day: its own later events keep sane stamps.
    assert township_clock.last.wall_ms <= real_ms() + DAY_MS
    assert township_clock.tick().wall_ms <= real_ms() + DAY_MS

    # The result goes down; the kiosk hands it over, and that goes up.
    replicate(pull)
    assert state_at(kiosk).status is CaseStatus.COMPLETED
    handover = Delivered(to=Recipient.CITIZEN, via=Delivery.VILLAGE_AGENT, person="王大爷")
    write(kiosk, case, handover, kiosk_origin, kiosk_clock)
    replicate(push)
    replicate(pull)

    at_kiosk, at_township = state_at(kiosk), state_at(township)
    assert msgspec.to_builtins(at_kiosk) == msgspec.to_builtins(at_township)
    assert snapshot(kiosk) == snapshot(township)
    timeline = [(entry.kind, entry.origin, entry.effect) for entry in at_township.timeline]
    kiosk_key, township_key = kiosk_origin.key, township_origin.key
    assert timeline == [
        ("submitted", kiosk_key, Effect.APPLIED),
        ("received", township_key, Effect.APPLIED),
        ("accepted", township_key, Effect.APPLIED),
        ("completed", township_key, Effect.APPLIED),
        ("delivered", kiosk_key, Effect.APPLIED),
    ]
    assert at_township.conflicts == ()
    assert at_township.skewed_clocks == (kiosk_key,)
    assert at_township.status is CaseStatus.COMPLETED and len(at_township.handovers) == 1
    # The township's dates are its own, not the kiosk's year-ahead ones.
    assert at_township.received_on == at_township.accepted_on == at_township.completed_on == today
    kiosk.close()
