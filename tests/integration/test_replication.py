"""Replication scenarios ported from PouchDB's suite (REPLICATION_PROTOCOL.md §3).

Each runs between real backends: two in-memory databases (opaque sequences, 403s), the
embedded SQLite store and a fresh database on pouchdb-server, in both directions.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sync import filters
from sync.couch import connect, ensure_database
from sync.database import Database, Doc
from sync.errors import CouchUnavailable, DocNotFound, RequestTooLarge
from sync.memory import Forbidden, MemoryDatabase
from sync.remote import RemoteDatabase
from sync.replicator import (
    Replication,
    ReplicationFailed,
    ReplicationResult,
    replicate,
    replicate_until_done,
    replication_id,
)
from sync.store import SQLiteStore
from tests.conftest import CouchUnderTest

PAIRS = [("memory", "memory"), ("sqlite", "remote"), ("remote", "sqlite")]

ODD_FORBIDDEN_JS = "function (doc) { if (doc.n % 2) { throw({forbidden: 'odd'}); } }"
BY_VILLAGE_JS = "function (doc, req) { return doc.village === req.query.village; }"


@filters.register("test/by_village")
def _by_village(doc: Doc, query: dict[str, str]) -> bool:
    return doc.get("village") == query.get("village")


@pytest.fixture
def make(couch_server: CouchUnderTest, tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    """A factory of empty databases of a given backend."""
    made: list[Any] = []

    def factory(kind: str) -> Database:
        if kind == "memory":
            db: Database = MemoryDatabase(f"m{len(made)}")
        elif kind == "sqlite":
            db = SQLiteStore(tmp_path / f"kiosk{len(made)}.sqlite3")
        else:
            name = couch_server.database_name("rep")
            ensure_database(connect(couch_server.url), name)
            db = RemoteDatabase(couch_server.url, name)
        made.append(db)
        return db

    yield factory
    for db in made:
        if isinstance(db, SQLiteStore):
            db.close()
    couch_server.check_alive()


@pytest.fixture(params=PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def pair(
    request: pytest.FixtureRequest, make: Callable[[str], Database]
) -> tuple[Database, Database]:
    """A source and a target of the parametrised backends."""
    source_kind, target_kind = request.param
    return make(source_kind), make(target_kind)


def rev(generation: int, seed: str) -> str:
    """A CouchDB-style revision id (32 lowercase hex)."""
    return f"{generation}-{hashlib.md5(seed.encode()).hexdigest()}"


def snapshot(db: Database) -> dict[str, tuple[str, list[str]]]:
    """Every document's winner and sorted leaves (deleted ones included)."""
    state: dict[str, tuple[str, list[str]]] = {}
    since: Any = 0
    while True:
        page = db.changes(since=since, limit=100, style="all_docs")
        if not page["results"]:
            return state
        for row in page["results"]:
            leaves = sorted(
                item["ok"]["_rev"] for item in db.open_revs(row["id"], "all") if "ok" in item
            )
            winner = row["changes"][0]["rev"]
            try:
                winner = db.get(row["id"])["_rev"]
            except DocNotFound:
                winner = "deleted"
            state[row["id"]] = (winner, leaves)
        since = page["last_seq"]


def add_docs(db: Database, count: int, prefix: str = "doc") -> None:
    """Write ``count`` small documents."""
    results = db.bulk_docs(
        [{"_id": f"{prefix}{i:04d}", "n": i, "village": f"v{i % 3}"} for i in range(count)]
    )
    assert all(r.get("ok") for r in results)


def test_basic_push_and_pull(pair: tuple[Database, Database]) -> None:
    source, target = pair
    add_docs(source, 30)
    result = replicate(Replication(source, target, batch_size=7))
    assert (result.docs_read, result.docs_written, result.batches) == (30, 30, 5)
    assert snapshot(target) == snapshot(source)
    assert target.get("doc0007")["n"] == 7
    assert result.last_seq == source.info()["update_seq"]


def test_rerun_transfers_nothing_and_writes_no_checkpoint(pair: tuple[Database, Database]) -> None:
    source, target = pair
    add_docs(source, 12)
    first = replicate(Replication(source, target, batch_size=5))
    checkpoint = target.get_local(f"_local/{first.replication_id}")
    assert checkpoint is not None and checkpoint["source_last_seq"] == first.last_seq
    again = replicate(Replication(source, target, batch_size=5))
    assert (again.docs_read, again.docs_written) == (0, 0)
    assert target.get_local(f"_local/{first.replication_id}")["_rev"] == checkpoint["_rev"]
    assert source.get_local(f"_local/{first.replication_id}")["_rev"] == checkpoint["_rev"]


def test_resumes_after_an_interruption(pair: tuple[Database, Database]) -> None:
    source, target = pair
    add_docs(source, 40)

    def cut_after_two_batches(result: ReplicationResult) -> None:
        if result.batches == 2:
            raise CouchUnavailable("link cut")

    with pytest.raises(CouchUnavailable):
        replicate(Replication(source, target, batch_size=10), cut_after_two_batches)
    resumed = replicate(Replication(source, target, batch_size=10))
    assert resumed.start_seq != 0
    assert (resumed.docs_read, resumed.docs_written) == (20, 20)
    assert snapshot(target) == snapshot(source)


def test_tombstones_keep_their_bodies(pair: tuple[Database, Database]) -> None:
    source, target = pair
    first = source.put({"_id": "gone", "n": 1})
    source.put({"_id": "gone", "_rev": first, "_deleted": True, "reason": "withdrawn"})
    replicate(Replication(source, target))
    with pytest.raises(DocNotFound):
        target.get("gone")
    [leaf] = target.open_revs("gone", "all")
    assert leaf["ok"]["_deleted"] is True and leaf["ok"]["reason"] == "withdrawn"
    assert leaf["ok"]["_rev"].startswith("2-")


def test_many_conflicts_converge_to_the_same_winner_and_leaves(
    pair: tuple[Database, Database],
) -> None:
    source, target = pair
    docs = [
        {
            "_id": "contested",
            "_rev": rev(1, f"x{i}"),
            "i": i,
            **({"_deleted": True} if i % 5 == 0 else {}),
        }
        for i in range(50)
    ]
    assert source.bulk_docs(docs, new_edits=False) == []
    target.bulk_docs(
        [{"_id": "contested", "_rev": rev(1, "target-side"), "mine": True}], new_edits=False
    )
    replicate(Replication(source, target, batch_size=3))
    replicate(Replication(target, source, batch_size=3))
    assert snapshot(source) == snapshot(target)
    assert len(snapshot(source)["contested"][1]) == 51
    assert source.info()["doc_count"] == target.info()["doc_count"] == 1


def test_only_new_leaves_travel_on_later_runs(pair: tuple[Database, Database]) -> None:
    source, target = pair
    source.bulk_docs([{"_id": "d", "_rev": rev(1, "a"), "v": "a"}], new_edits=False)
    assert replicate(Replication(source, target)).docs_written == 1
    source.bulk_docs(
        [
            {
                "_id": "d",
                "_rev": rev(2, "b"),
                "_revisions": {"start": 2, "ids": [rev(2, "b")[2:], rev(1, "a")[2:]]},
            },
            {"_id": "d", "_rev": rev(1, "c"), "v": "c"},
        ],
        new_edits=False,
    )
    later = replicate(Replication(source, target))
    assert later.docs_written == 2
    assert snapshot(target) == snapshot(source)


def test_filtered_replication_by_name_and_by_ids(
    pair: tuple[Database, Database], couch_server: CouchUnderTest
) -> None:
    source, target = pair
    add_docs(source, 9)
    if isinstance(source, RemoteDatabase):
        source.put({"_id": "_design/test", "filters": {"by_village": BY_VILLAGE_JS}})
    by_village = replicate(
        Replication(source, target, filter="test/by_village", query_params={"village": "v1"})
    )
    assert by_village.docs_written == 3
    assert sorted(snapshot(target)) == ["doc0001", "doc0004", "doc0007"]
    by_ids = replicate(Replication(source, target, doc_ids=["doc0000", "doc0002"]))
    assert by_ids.replication_id != by_village.replication_id
    assert by_ids.docs_written == 2
    again = replicate(
        Replication(source, target, filter="test/by_village", query_params={"village": "v2"})
    )
    assert again.docs_written == 2  # doc0002 came with the doc_ids run
    assert again.replication_id != by_village.replication_id


def test_forbidden_writes_are_skipped_and_counted(make: Callable[[str], Database]) -> None:
    def only_even(doc: Doc) -> None:
        if doc.get("n", 0) % 2:
            raise Forbidden("odd documents are not for this village")

    for source, target in [
        (make("sqlite"), MemoryDatabase("guarded", validate=only_even)),
        (make("memory"), make("remote")),
    ]:
        add_docs(source, 10)
        if isinstance(target, RemoteDatabase):
            target.put(
                {
                    "_id": "_design/guard",
                    "validate_doc_update": ODD_FORBIDDEN_JS,
                }
            )
        result = replicate(Replication(source, target, batch_size=4))
        assert (result.docs_written, result.denied) == (5, 5)
        assert sorted(r["id"] for r in result.refused) == [f"doc{n:04d}" for n in (1, 3, 5, 7, 9)]
        assert {r["error"] for r in result.refused} == {"forbidden"}
        assert all("odd" in r["reason"] for r in result.refused)
        assert result.last_seq == source.info()["update_seq"]
        assert target.get("doc0002")["n"] == 2
        with pytest.raises(DocNotFound):
            target.get("doc0003")


def test_a_read_only_source_still_replicates(make: Callable[[str], Database]) -> None:
    source = MemoryDatabase("published")
    add_docs(source, 6)
    source.read_only = True
    for target in (make("sqlite"), make("remote")):
        result = replicate(Replication(source, target, batch_size=4))
        assert result.docs_written == 6
        assert source.get_local(f"_local/{result.replication_id}") is None
        assert (
            target.get_local(f"_local/{result.replication_id}")["source_last_seq"]
            == result.last_seq
        )
        assert replicate(Replication(source, target)).docs_written == 0


class _SmallTarget(MemoryDatabase):
    """A target that answers 413 to more than three documents at once (a proxy's body limit)."""

    def bulk_docs(self, docs: Any, *, new_edits: bool = True) -> list[Doc]:
        if len(docs) > 3 or any(len(str(d)) > 5000 for d in docs):
            raise RequestTooLarge("413 request entity too large")
        return super().bulk_docs(docs, new_edits=new_edits)


def test_batches_halve_on_413(make: Callable[[str], Database]) -> None:
    source = make("sqlite")
    add_docs(source, 20)
    source.put({"_id": "huge", "blob": "x" * 10_000})
    target = _SmallTarget("proxied")
    result = replicate(Replication(source, target, batch_size=10))
    assert result.docs_written == 20
    assert result.doc_write_failures == 1 and "huge" in result.failures[0]
    assert target.info()["doc_count"] == 20


class _FlakySource(MemoryDatabase):
    """A source whose ``_bulk_get`` cannot supply one revision (a compaction race)."""

    hide: str | None = None

    def bulk_get(self, docs: Any, *, attachments: bool = False) -> list[Doc]:
        results = super().bulk_get(docs, attachments=attachments)
        for entry in results:
            if entry["id"] == self.hide:
                entry["docs"] = [
                    {
                        "error": {
                            "id": self.hide,
                            "rev": "?",
                            "error": "not_found",
                            "reason": "missing",
                        }
                    }
                ]
        return results


def test_no_checkpoint_past_a_document_that_could_not_be_fetched(
    make: Callable[[str], Database],
) -> None:
    source = _FlakySource("flaky")
    add_docs(source, 10)
    source.hide = "doc0006"
    target = make("sqlite")
    with pytest.raises(ReplicationFailed):
        replicate(Replication(source, target, batch_size=5))
    checkpoint = target.get_local(f"_local/{replication_id(Replication(source, target))}")
    fifth = source.changes(limit=5)["results"][-1]["seq"]
    assert checkpoint is not None and checkpoint["source_last_seq"] == fifth
    assert sorted(snapshot(target)) == [f"doc{i:04d}" for i in range(5)]
    source.hide = None
    resumed = replicate(Replication(source, target, batch_size=5))
    assert resumed.docs_written == 5
    assert snapshot(target) == snapshot(source)


class _DownTwice(MemoryDatabase):
    """A source whose link is down for the first two attempts."""

    failures = 2

    def info(self) -> Doc:
        if self.failures:
            self.failures -= 1
            raise CouchUnavailable("no route to host")
        return super().info()


def test_network_errors_are_retried_with_growing_jittered_pauses(
    make: Callable[[str], Database],
) -> None:
    source = _DownTwice("remote-kiosk")
    add_docs(source, 3)
    pauses: list[float] = []
    result = replicate_until_done(
        Replication(source, make("sqlite")), attempts=5, first_delay=1.0, sleep=pauses.append
    )
    assert result.docs_written == 3
    assert len(pauses) == 2 and 0 <= pauses[0] <= 1.0 and 0 <= pauses[1] <= 2.0
    with pytest.raises(CouchUnavailable):
        replicate_until_done(
            Replication(_DownTwice("down"), make("sqlite")), attempts=2, sleep=pauses.append
        )


def test_attachments_travel_in_both_directions(pair: tuple[Database, Database]) -> None:
    source, target = pair
    source.put(
        {
            "_id": "photo",
            "_attachments": {
                "id-card.jpg": {
                    "content_type": "image/jpeg",
                    "data": base64.b64encode(b"\xff\xd8jpeg").decode(),
                }
            },
        }
    )
    replicate(Replication(source, target))
    assert target.get_attachment("photo", "id-card.jpg") == b"\xff\xd8jpeg"
    current = target.get("photo")
    target.put(
        {"_id": "photo", "_rev": current["_rev"], "_attachments": {}, "note": "photo removed"}
    )
    replicate(Replication(target, source))
    assert "_attachments" not in source.get("photo") or not source.get("photo")["_attachments"]


def test_updates_replicate_into_a_database_with_a_validation_function(
    make: Callable[[str], Database],
) -> None:
    # pouchdb-server 4.2 dropped these until tools/pouchdb/fix-validation.js; CouchDB keeps them.
    source, target = make("sqlite"), make("remote")
    target.put({"_id": "_design/guard", "validate_doc_update": ODD_FORBIDDEN_JS})
    first = source.put({"_id": "settings:district", "n": 2, "version": 1})
    replicate(Replication(source, target))
    source.put({"_id": "settings:district", "_rev": first, "n": 4, "version": 2})
    assert replicate(Replication(source, target)).docs_written == 1
    assert target.get("settings:district")["version"] == 2
    assert snapshot(target)["settings:district"] == snapshot(source)["settings:district"]
