"""Convergence: random edits at kiosks and the township, random replication orders and cuts.

Whatever happens, once every link has run both ways all replicas hold the same documents with
the same winners and leaves, and fold every case to the same state (hypothesis, on the
in-memory and SQLite backends; a few fixed seeds replayed through pouchdb-server).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.calendar import WorkCalendar
from core.cases import (
    Accepted,
    Completed,
    Delivery,
    MissingMaterial,
    Origin,
    Person,
    Received,
    Returned,
    Submitted,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import Mode
from core.clock import HlcClock
from core.fold import fold
from sync.couch import connect, ensure_database
from sync.database import Database
from sync.errors import CouchConflict, CouchUnavailable, DocNotFound
from sync.memory import MemoryDatabase
from sync.remote import RemoteDatabase
from sync.replicator import Replication, ReplicationResult, replicate
from sync.store import SQLiteStore
from tests.conftest import CouchUnderTest
from tests.factories import ITEM, START, TOWNSHIP, VILLAGE

NODES = ["township", "kiosk_a", "kiosk_b"]
LINKS = [("kiosk_a", "township"), ("kiosk_b", "township")]
CAL = WorkCalendar()

operation = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(NODES), st.integers(0, 3), st.integers(0, 99)),
    st.tuples(st.just("delete"), st.sampled_from(NODES), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("conflict"), st.sampled_from(NODES), st.integers(0, 3), st.integers(0, 9)),
    st.tuples(st.just("event"), st.sampled_from(NODES), st.integers(0, 4), st.integers(0, 1)),
    st.tuples(
        st.just("sync"),
        st.sampled_from(range(len(LINKS) * 2)),
        st.integers(0, 3),
        st.integers(0, 1),
    ),
)


class Network:
    """A township and two kiosks, each with its own database, clock and writer identity."""

    def __init__(self, make: Callable[[str], Database]) -> None:
        self.dbs = {node: make(node) for node in NODES}
        self.origins = {
            node: Origin(TOWNSHIP if node == "township" else VILLAGE, f"{node[-1]}x7k2q")
            for node in NODES
        }
        self.counters = dict.fromkeys(NODES, 0)
        self.ticks = 0
        # kiosk_b's clock runs a year fast: ordering must not depend on wall clocks.
        offsets = {"township": 0, "kiosk_a": 0, "kiosk_b": 365 * 24 * 3600 * 1000}
        self.clocks = {
            node: HlcClock(self.origins[node].key, self._now(offsets[node])) for node in NODES
        }
        kiosk = "kiosk_a"
        self.counters[kiosk] += 1
        self.case = new_case(
            origin=self.origins[kiosk],
            counter=self.counters[kiosk],
            hlc=self.clocks[kiosk].tick(),
            wall_time=START,
            author="jg.v201",
            village=VILLAGE,
            township=TOWNSHIP,
            item=ITEM,
            catalogue_version=1,
            applicant=Person(name="王大爷", id_number="500109193805120013", phone="13800000000"),
            mode=Mode.AGENCY,
            handling_unit=TOWNSHIP,
        )
        self.dbs[kiosk].put(case_to_doc(self.case))

    def _now(self, offset_ms: int) -> Callable[[], int]:
        def now() -> int:
            self.ticks += 1
            return int(START.timestamp() * 1000) + self.ticks * 60_000 + offset_ms

        return now

    def apply(self, op: tuple[str, Any, int, int]) -> None:
        """Run one random operation."""
        kind, where, key, value = op
        if kind == "sync":
            self.sync(where, cut_after=key if value else None)
            return
        db = self.dbs[where]
        doc_id = f"note:{key}"
        if kind == "edit":
            try:
                current = db.get(doc_id)
                db.put({**current, "value": value, "by": where})
            except DocNotFound:
                db.put({"_id": doc_id, "value": value, "by": where})
            except CouchConflict:
                pass
        elif kind == "delete":
            try:
                current = db.get(doc_id)
                db.put({"_id": doc_id, "_rev": current["_rev"], "_deleted": True, "by": where})
            except DocNotFound:
                pass
        elif kind == "conflict":
            seed = f"{where}-{key}-{value}"
            db.bulk_docs(
                [
                    {
                        "_id": doc_id,
                        "_rev": f"1-{hashlib.md5(seed.encode()).hexdigest()}",
                        "value": value,
                    }
                ],
                new_edits=False,
            )
        elif kind == "event":
            self.event(where, key)

    def event(self, where: str, which: int) -> None:
        """Write a case event at ``where`` (possibly illegal there: the fold must keep it)."""
        payloads = [
            Submitted(),
            Received(receiver=TOWNSHIP, received_at=START + timedelta(hours=2)),
            Accepted(),
            Returned(missing=(MissingMaterial(name="户口簿"),)),
            Completed(result="已发放", delivery=Delivery.VILLAGE_AGENT),
        ]
        self.counters[where] += 1
        event = new_event(
            self.case,
            payloads[which],
            origin=self.origins[where],
            counter=self.counters[where],
            hlc=self.clocks[where].tick(),
            wall_time=START + timedelta(minutes=self.counters[where]),
            author=where,
        )
        self.dbs[where].put(event_to_doc(event))

    def sync(self, link: int, cut_after: int | None = None) -> None:
        """Replicate one direction of one link, perhaps cut after some batches."""
        a, b = LINKS[link // 2]
        source, target = (a, b) if link % 2 == 0 else (b, a)

        def cut(result: ReplicationResult) -> None:
            if cut_after is not None and result.batches > cut_after:
                raise CouchUnavailable("link cut")

        try:
            replicate(Replication(self.dbs[source], self.dbs[target], batch_size=2), cut)
        except CouchUnavailable:
            pass

    def settle(self) -> None:
        """Run every link both ways until nothing moves."""
        for _ in range(3):
            for link in range(len(LINKS) * 2):
                self.sync(link)

    def state(self, node: str) -> tuple[dict[str, Any], Any]:
        """Every document's winner and leaves, and the folded case, as one replica sees them."""
        db = self.dbs[node]
        docs: dict[str, Any] = {}
        since: Any = 0
        events = []
        while page := db.changes(since=since, limit=50, style="all_docs", include_docs=True)[
            "results"
        ]:
            for row in page:
                leaves = sorted(
                    i["ok"]["_rev"] for i in db.open_revs(row["id"], "all") if "ok" in i
                )
                docs[row["id"]] = (row.get("deleted", False), row["doc"]["_rev"], leaves)
                if row["doc"].get("type") == "case_event" and not row.get("deleted"):
                    events.append(row["doc"])
            since = page[-1]["seq"]
        case = db.get(self.case_id) if self.case_id in docs else None
        folded = fold(case, events, CAL, today=date(2026, 12, 31)) if case else None
        return docs, msgspec.to_builtins(folded)

    @property
    def case_id(self) -> str:
        """The case's document id."""
        return case_to_doc(self.case)["_id"]


def assert_converged(network: Network) -> None:
    """Every replica holds the same documents and folds the case the same way."""
    network.settle()
    states = {node: network.state(node) for node in NODES}
    reference = states["township"]
    for node, state in states.items():
        assert state[0] == reference[0], f"{node} differs in documents"
        assert state[1] == reference[1], f"{node} folds the case differently"
    assert reference[1] is not None and reference[1]["case_id"] == network.case_id


def local_factory(kind: str, tmp: Path) -> Callable[[str], Database]:
    """Databases of one local backend."""
    if kind == "memory":
        return lambda node: MemoryDatabase(node)
    return lambda node: SQLiteStore(tmp / f"{node}-{uuid.uuid4().hex}.sqlite3")


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=st.lists(operation, max_size=30))
def test_random_histories_converge(backend: str, operations: list[Any], tmp_path: Path) -> None:
    network = Network(local_factory(backend, tmp_path))
    for op in operations:
        network.apply(op)
    assert_converged(network)


@pytest.mark.parametrize("seed", [3, 17, 2026])
def test_fixed_seeds_converge_through_pouchdb_server(
    seed: int, couch_server: CouchUnderTest
) -> None:
    rng = random.Random(seed)

    def remote(node: str) -> Database:
        name = couch_server.database_name(node.replace("_", ""))
        ensure_database(connect(couch_server.url), name)
        return RemoteDatabase(couch_server.url, name)

    network = Network(remote)
    for _ in range(30):
        network.apply(_random_op(rng))
    assert_converged(network)
    couch_server.check_alive()


def _random_op(rng: random.Random) -> tuple[str, Any, int, int]:
    kind = rng.choice(["edit", "delete", "conflict", "event", "event", "sync", "sync"])
    if kind == "sync":
        return ("sync", rng.randrange(len(LINKS) * 2), rng.randrange(3), rng.randrange(2))
    if kind == "event":
        return ("event", rng.choice(NODES), rng.randrange(5), 0)
    return (kind, rng.choice(NODES), rng.randrange(4), rng.randrange(10))
