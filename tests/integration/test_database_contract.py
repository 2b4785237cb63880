"""The ``Database`` contract: one suite, every backend (Litestar's stores pattern).

Each case is a behaviour every CouchDB-compatible server shares, asserted on exact shapes, so
the replicator can treat the remote CouchDB adapter, the embedded SQLite store and the memory
store alike. The ``database`` fixture runs each case once per name in ``BACKENDS``; cases
named ``test_remote_only_*`` cover what only a server does (JavaScript validation, HTTP:
gzip, the ``_bulk_get`` fallback, 413s) and what only the adapter normalises.

A backend whose module is missing fails loudly instead of skipping: CI must run them all.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from sync.couch import connect, ensure_database
from sync.database import Database, Doc
from sync.errors import (
    BadRequest,
    CouchConflict,
    CouchRejected,
    CouchUnavailable,
    DocNotFound,
    RequestTooLarge,
)
from sync.filters import FILTERS, register
from sync.remote import RemoteDatabase
from tests.conftest import CouchUnderTest

BACKENDS = ["remote", "sqlite", "memory"]
"""Backends every contract case runs against: pouchdb-server, the embedded store, memory."""

# The shared test vectors live in ../shared/vectors beside the repository root.
_VECTORS_FILE = Path(__file__).resolve().parents[2].parent / "shared/vectors/winning_revisions.json"
VECTORS = json.loads(_VECTORS_FILE.read_text(encoding="utf-8"))["cases"]

VILLAGE_FILTER = "function(doc, req){ return doc.village === req.query.village; }"
"""The JavaScript twin of by_village below. pouchdb-server crashes on a function source that
starts with a newline, so sources are written stripped."""

FORBID_FIELD = (
    "function (newDoc, oldDoc, userCtx, secObj) {"
    " if (newDoc.forbidden !== undefined) { throw({forbidden: 'forbidden is not allowed'}); }"
    " if (newDoc.unauthorized !== undefined) { throw({unauthorized: 'log in first'}); } }"
)


def by_village(doc: dict[str, Any], query_params: Mapping[str, str]) -> bool:
    """Python twin of VILLAGE_FILTER for the embedded stores."""
    return doc.get("village") == query_params.get("village")


if FILTERS.get("contract/by_village") is not by_village:
    register("contract/by_village")(by_village)


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def server_survives(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the CouchDB-compatible server, check it is still alive:
    pouchdb-server dies on some requests, and the adapter must never send them."""
    yield
    if "couch_server" in request.fixturenames:
        request.getfixturevalue("couch_server").check_alive()


@pytest.fixture
def remote_database(couch_server: CouchUnderTest) -> RemoteDatabase:
    """A fresh database on the module's CouchDB-compatible server."""
    name = couch_server.database_name("contract")
    ensure_database(connect(couch_server.url), name)
    return RemoteDatabase(couch_server.url, name)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of each backend in BACKENDS."""
    backend = request.param
    if backend == "remote":
        yield request.getfixturevalue("remote_database")
    elif backend == "sqlite":
        try:
            from sync.store import SQLiteStore
        except ImportError as exc:
            pytest.fail(f"backend 'sqlite': sync/store.py (SQLiteStore) is missing: {exc}")
        store = SQLiteStore(tmp_path / "contract.sqlite3")
        yield store
        store.close()
    elif backend == "memory":
        try:
            from sync.memory import MemoryDatabase
        except ImportError as exc:
            pytest.fail(f"backend 'memory': sync/memory.py (MemoryDatabase) is not written: {exc}")
        yield MemoryDatabase("contract")
    else:
        pytest.fail(f"unknown backend {backend!r}")


# --- helpers ------------------------------------------------------------------------------


def rev(generation: int, seed: str) -> str:
    """A revision id the way CouchDB 3 prints them: ``N-`` and 32 lowercase hex digits."""
    return f"{generation}-{hashlib.md5(seed.encode()).hexdigest()}"


def hash_of(revision: str) -> str:
    """The hash part of ``N-hash``."""
    return revision.split("-", 1)[1]


def generation(revision: str) -> int:
    """The generation of ``N-hash``."""
    return int(revision.split("-", 1)[0])


def history(*revs: str) -> dict[str, Any]:
    """``_revisions`` for a path given newest first."""
    return {"start": generation(revs[0]), "ids": [hash_of(r) for r in revs]}


def is_rev(value: Any, gen: int) -> bool:
    """Whether ``value`` is a generation-``gen`` revision with a 32-hex hash."""
    if not isinstance(value, str) or generation(value) != gen:
        return False
    digest = hash_of(value)
    return len(digest) == 32 and all(c in "0123456789abcdef" for c in digest)


def feed(db: Database, **options: Any) -> list[Doc]:
    """Every row of the changes feed, paged with ``limit`` 2 and ``last_seq`` sent back."""
    rows: list[Doc] = []
    since: Any = 0
    for _ in range(100):
        page = db.changes(since=since, limit=2, **options)
        assert set(page) == {"results", "last_seq"}
        if not page["results"]:
            return rows
        rows.extend(page["results"])
        since = page["last_seq"]
    raise AssertionError("the changes feed never ended")


def leaves_of(db: Database, doc_id: str) -> set[str]:
    """Every leaf of ``doc_id`` (open_revs=all)."""
    return {item["ok"]["_rev"] for item in db.open_revs(doc_id, "all")}


def write_branches(db: Database, doc_id: str, leaves: list[tuple[str, bool]]) -> None:
    """Write each (rev, deleted) as its own branch with new_edits=false."""
    docs: list[Doc] = []
    for leaf, deleted in leaves:
        doc: Doc = {"_id": doc_id, "_rev": leaf, "leaf": leaf}
        if deleted:
            doc["_deleted"] = True
        docs.append(doc)
    assert db.bulk_docs(docs, new_edits=False) == []


# --- info and identity --------------------------------------------------------------------


def test_info_fields(database: Database) -> None:
    info = database.info()
    assert set(info) == {"db_name", "doc_count", "update_seq", "instance_start_time"}
    assert info["db_name"] == database.name
    assert info["doc_count"] == 0
    assert isinstance(info["update_seq"], int | str)
    assert isinstance(info["instance_start_time"], str)
    database.put({"_id": "a"})
    database.put({"_id": "b"})
    after = database.info()
    assert after["doc_count"] == 2
    assert after["update_seq"] != info["update_seq"]


def test_identity_is_stable(database: Database) -> None:
    identity = database.identity()
    assert isinstance(identity, str) and identity
    assert database.identity() == identity


# --- single documents ---------------------------------------------------------------------


def test_put_and_get_with_revisions(database: Database) -> None:
    rev1 = database.put({"_id": "case:1", "title": "路灯坏了", "n": 1})
    assert is_rev(rev1, 1)
    assert database.get("case:1") == {"_id": "case:1", "_rev": rev1, "title": "路灯坏了", "n": 1}

    rev2 = database.put({"_id": "case:1", "_rev": rev1, "title": "路灯坏了", "n": 2})
    assert is_rev(rev2, 2)
    assert database.get("case:1")["n"] == 2
    assert database.get("case:1", rev=rev1) == {
        "_id": "case:1",
        "_rev": rev1,
        "title": "路灯坏了",
        "n": 1,
    }
    with_revs = database.get("case:1", revs=True)
    assert with_revs["_revisions"] == {"start": 2, "ids": [hash_of(rev2), hash_of(rev1)]}
    assert "_conflicts" not in database.get("case:1", conflicts=True)


def test_put_with_stale_or_unknown_rev_conflicts(database: Database) -> None:
    rev1 = database.put({"_id": "case:1"})
    database.put({"_id": "case:1", "_rev": rev1, "v": 2})
    with pytest.raises(CouchConflict):
        database.put({"_id": "case:1", "_rev": rev1, "v": 3})
    with pytest.raises(CouchConflict):
        database.put({"_id": "case:1", "v": 3})  # no _rev on a live document
    with pytest.raises(CouchConflict):
        database.put({"_id": "case:1", "_rev": rev(2, "never written"), "v": 3})
    assert database.get("case:1")["v"] == 2


def test_get_of_missing_document_or_revision(database: Database) -> None:
    with pytest.raises(DocNotFound):
        database.get("case:none")
    database.put({"_id": "case:1"})
    with pytest.raises(DocNotFound):
        database.get("case:1", rev=rev(1, "unknown"))


def test_deleted_document(database: Database) -> None:
    rev1 = database.put({"_id": "case:1", "v": 1})
    database.put({"_id": "case:2"})
    rev2 = database.put({"_id": "case:1", "_rev": rev1, "_deleted": True})
    assert is_rev(rev2, 2)
    with pytest.raises(DocNotFound):
        database.get("case:1")
    assert database.get("case:1", rev=rev2) == {"_id": "case:1", "_rev": rev2, "_deleted": True}
    assert database.info()["doc_count"] == 1
    rows = {row["id"]: row for row in feed(database)}
    assert set(rows) == {"case:1", "case:2"}
    assert rows["case:1"]["changes"] == [{"rev": rev2}]
    assert rows["case:1"]["deleted"] is True
    assert "deleted" not in rows["case:2"]
    assert database.open_revs("case:1", "all") == [
        {
            "ok": {
                "_id": "case:1",
                "_rev": rev2,
                "_deleted": True,
                "_revisions": history(rev2, rev1),
            }
        }
    ]


def test_tombstone_keeps_its_body(database: Database) -> None:
    """pouchdb test 5904: a deleted document may keep fields, and they replicate."""
    rev1 = database.put({"_id": "case:1", "v": 1})
    rev2 = database.put({"_id": "case:1", "_rev": rev1, "_deleted": True, "reason": "重复"})
    tombstone = {"_id": "case:1", "_rev": rev2, "_deleted": True, "reason": "重复"}
    assert database.get("case:1", rev=rev2) == tombstone
    [row] = database.changes(include_docs=True)["results"]
    assert row["deleted"] is True
    assert row["doc"] == tombstone
    [result] = database.bulk_get([{"id": "case:1", "rev": rev2}])
    replicated = {**tombstone, "_revisions": history(rev2, rev1)}
    assert result == {"id": "case:1", "docs": [{"ok": replicated}]}
    # A put without _rev on a deleted document extends the tombstone's branch.
    rev3 = database.put({"_id": "case:1", "v": 3})
    assert is_rev(rev3, 3)
    assert database.get("case:1", revs=True)["_revisions"]["ids"][1:] == [
        hash_of(rev2),
        hash_of(rev1),
    ]


# --- conflicts written by replication (new_edits=false) -----------------------------------


def test_replicated_branches_make_a_conflict(database: Database) -> None:
    a1, b2, c2 = rev(1, "a"), rev(2, "b"), rev(2, "c")
    assert (
        database.bulk_docs(
            [
                {"_id": "doc", "_rev": b2, "_revisions": history(b2, a1), "side": "b"},
                {"_id": "doc", "_rev": c2, "_revisions": history(c2, a1), "side": "c"},
            ],
            new_edits=False,
        )
        == []
    )
    winner, loser = max(b2, c2), min(b2, c2)
    assert database.get("doc", conflicts=True) == {
        "_id": "doc",
        "_rev": winner,
        "side": "b" if winner == b2 else "c",
        "_conflicts": [loser],
    }
    assert "_conflicts" not in database.get("doc")

    everything = sorted(database.open_revs("doc", "all"), key=lambda item: item["ok"]["_rev"])
    assert everything == sorted(
        [
            {"ok": {"_id": "doc", "_rev": b2, "side": "b", "_revisions": history(b2, a1)}},
            {"ok": {"_id": "doc", "_rev": c2, "side": "c", "_revisions": history(c2, a1)}},
        ],
        key=lambda item: item["ok"]["_rev"],
    )
    unknown = rev(3, "unknown")
    side = "b" if loser == b2 else "c"
    assert database.open_revs("doc", [loser, unknown]) == [
        {"ok": {"_id": "doc", "_rev": loser, "side": side, "_revisions": history(loser, a1)}},
        {"missing": unknown},
    ]
    # Answered in the order asked (CouchDB itself puts the missing ones last).
    assert [list(item) for item in database.open_revs("doc", [unknown, loser])] == [
        ["missing"],
        ["ok"],
    ]
    assert database.open_revs("nobody", [unknown]) == [{"missing": unknown}]
    with pytest.raises(DocNotFound):
        database.open_revs("nobody", "all")

    [row] = database.changes(style="all_docs")["results"]
    assert sorted(c["rev"] for c in row["changes"]) == sorted([b2, c2])
    [row] = database.changes()["results"]
    assert row["changes"] == [{"rev": winner}]

    # Resolving: delete the loser; the winner stays and the conflict is gone.
    tombstone = database.put({"_id": "doc", "_rev": loser, "_deleted": True})
    assert is_rev(tombstone, 3)
    assert database.get("doc", conflicts=True)["_rev"] == winner
    assert "_conflicts" not in database.get("doc", conflicts=True)
    assert leaves_of(database, "doc") == {winner, tombstone}


@pytest.mark.parametrize("case", VECTORS, ids=[f"vector{n}" for n in range(len(VECTORS))])
def test_winning_revision_vectors(database: Database, case: dict[str, Any]) -> None:
    leaves = [(leaf, deleted) for leaf, deleted in case["leaves"]]
    write_branches(database, "doc", leaves)
    winner = case["winner"]
    [row] = database.changes()["results"]
    assert row["changes"] == [{"rev": winner}]
    [row] = database.changes(style="all_docs")["results"]
    assert sorted(c["rev"] for c in row["changes"]) == sorted(leaf for leaf, _ in leaves)
    assert leaves_of(database, "doc") == {leaf for leaf, _ in leaves}
    if case.get("deleted"):
        assert row["deleted"] is True
        with pytest.raises(DocNotFound):
            database.get("doc")
        assert database.get("doc", rev=winner)["_deleted"] is True
        return
    assert "deleted" not in row
    doc = database.get("doc", conflicts=True)
    assert doc["_rev"] == winner
    assert doc["leaf"] == winner
    assert sorted(doc.get("_conflicts", [])) == sorted(case["conflicts"])
    assert ("_conflicts" in doc) == bool(case["conflicts"])


def test_replicated_history_merges_and_stays_apart(database: Database) -> None:
    """Overlapping histories graft onto one path; a disjoint one is a new root (probed)."""
    path = [rev(n, f"p{n}") for n in range(1, 8)]  # 1-… to 7-…
    newest_first = list(reversed(path))
    assert (
        database.bulk_docs(
            [{"_id": "doc", "_rev": path[2], "_revisions": history(*newest_first[4:])}],
            new_edits=False,
        )
        == []
    )
    database.bulk_docs(
        [{"_id": "doc", "_rev": path[4], "_revisions": history(*newest_first[2:5])}],
        new_edits=False,
    )
    assert leaves_of(database, "doc") == {path[4]}
    assert database.get("doc", revs=True)["_revisions"] == history(*newest_first[2:])
    database.bulk_docs(
        [{"_id": "doc", "_rev": path[6], "_revisions": history(*newest_first[:2])}],
        new_edits=False,
    )
    assert leaves_of(database, "doc") == {path[4], path[6]}
    assert database.get("doc", conflicts=True)["_conflicts"] == [path[4]]


def test_replicated_deletion(database: Database) -> None:
    a1, d2 = rev(1, "a"), rev(2, "d")
    database.bulk_docs([{"_id": "doc", "_rev": a1, "v": 1}], new_edits=False)
    errors = database.bulk_docs(
        [{"_id": "doc", "_rev": d2, "_deleted": True, "_revisions": history(d2, a1)}],
        new_edits=False,
    )
    assert errors == []
    with pytest.raises(DocNotFound):
        database.get("doc")
    assert leaves_of(database, "doc") == {d2}


# --- the changes feed ---------------------------------------------------------------------


def test_changes_pages_with_last_seq(database: Database) -> None:
    revs = {f"doc:{n}": database.put({"_id": f"doc:{n}", "n": n}) for n in range(5)}
    rows = feed(database)
    assert [row["id"] for row in rows] == [f"doc:{n}" for n in range(5)]
    for row in rows:
        assert set(row) == {"seq", "id", "changes"}
        assert row["changes"] == [{"rev": revs[row["id"]]}]

    # An edited document appears once, at its newest seq.
    database.put({"_id": "doc:1", "_rev": revs["doc:1"], "n": 10})
    ids = [row["id"] for row in feed(database)]
    assert ids == ["doc:0", "doc:2", "doc:3", "doc:4", "doc:1"]

    # Starting from a page's last_seq gives only what came after.
    first = database.changes(limit=3)
    rest = database.changes(since=first["last_seq"])
    assert [row["id"] for row in first["results"] + rest["results"]] == ids
    end = database.changes(since=rest["last_seq"])
    assert end["results"] == []


def test_changes_include_docs(database: Database) -> None:
    rev1 = database.put({"_id": "doc:1", "v": 1})
    rev2 = database.put({"_id": "doc:2", "v": 2})
    database.put({"_id": "doc:2", "_rev": rev2, "_deleted": True})
    rows = database.changes(include_docs=True)["results"]
    assert [row["id"] for row in rows] == ["doc:1", "doc:2"]
    assert rows[0]["doc"] == {"_id": "doc:1", "_rev": rev1, "v": 1}
    assert rows[1]["doc"]["_deleted"] is True
    assert set(rows[1]) == {"seq", "id", "changes", "deleted", "doc"}


def test_changes_doc_ids_filter(database: Database) -> None:
    for n in range(6):
        database.put({"_id": f"doc:{n}"})
    picked = ["doc:4", "doc:1", "doc:none", "doc:5"]
    assert [row["id"] for row in feed(database, doc_ids=picked)] == ["doc:1", "doc:4", "doc:5"]
    page = database.changes(doc_ids=["doc:1"], include_docs=True, style="all_docs")
    [row] = page["results"]
    assert row["doc"]["_id"] == "doc:1"
    assert database.changes(doc_ids=[])["results"] == []


def test_changes_named_filter(database: Database) -> None:
    # The design document is what the servers run; the embedded stores use sync.filters.
    database.put({"_id": "_design/contract", "filters": {"by_village": VILLAGE_FILTER.strip()}})
    villages = ["甲村", "乙村", "甲村", "丙村", "甲村"]
    for n, village in enumerate(villages):
        database.put({"_id": f"case:{n}", "village": village})
    rows = feed(database, filter="contract/by_village", query_params={"village": "甲村"})
    assert [row["id"] for row in rows] == ["case:0", "case:2", "case:4"]
    assert feed(database, filter="contract/by_village", query_params={"village": "丁村"}) == []


def test_changes_unknown_or_malformed_filter(database: Database) -> None:
    database.put({"_id": "case:1", "village": "甲村"})
    with pytest.raises(DocNotFound):
        database.changes(filter="contract/no_such_filter", query_params={"village": "甲村"})
    with pytest.raises(DocNotFound):
        database.changes(filter="no_such_ddoc/by_village", query_params={"village": "甲村"})
    with pytest.raises(BadRequest):
        database.changes(filter="by_village")


def test_changes_argument_edges(database: Database) -> None:
    database.put({"_id": "doc:1"})
    # limit=0: no rows, and a last_seq that does not skip anything (seqs are opaque: only
    # what comes after them is compared).
    empty = database.changes(limit=0)
    assert empty["results"] == []
    assert [row["id"] for row in database.changes(since=empty["last_seq"])["results"]] == ["doc:1"]
    with pytest.raises(BadRequest):
        database.changes(limit=-1)
    with pytest.raises(BadRequest):
        database.changes(style="newest")  # type: ignore[arg-type]
    # query_params without a filter are ignored
    assert len(database.changes(query_params={"village": "甲村"})["results"]) == 1


# --- revs_diff, bulk_get, bulk_docs -------------------------------------------------------


def test_revs_diff(database: Database) -> None:
    rev1 = database.put({"_id": "doc", "v": 1})
    rev2 = database.put({"_id": "doc", "_rev": rev1, "v": 2})
    a1, b2, c2, d3 = rev(1, "a"), rev(2, "b"), rev(2, "c"), rev(3, "d")
    database.bulk_docs(
        [
            {"_id": "doc", "_rev": b2, "_revisions": history(b2, a1)},
            {"_id": "doc", "_rev": d3, "_deleted": True, "_revisions": history(d3, c2, a1)},
        ],
        new_edits=False,
    )
    assert database.revs_diff({}) == {}
    # Conflicting and deleted revisions that are available are not missing (pouchdb test),
    # nor is an older revision written here. (An ancestor known only from a replicated
    # _revisions list, here a1 and c2, is left open: CouchDB says known, PouchDB missing.)
    assert database.revs_diff({"doc": [rev1, rev2, b2, d3]}) == {}
    unknown = rev(4, "x")
    assert database.revs_diff({"doc": [b2, unknown], "new": [a1]}) == {
        "doc": {"missing": [unknown]},
        "new": {"missing": [a1]},
    }


def test_bulk_get(database: Database) -> None:
    rev1 = database.put({"_id": "doc:1", "v": 1})
    rev2 = database.put({"_id": "doc:1", "_rev": rev1, "v": 2})
    other = database.put({"_id": "doc:2", "v": 3})
    unknown = rev(1, "unknown")
    results = database.bulk_get(
        [
            {"id": "doc:1", "rev": rev2},
            {"id": "doc:2", "rev": other},
            {"id": "doc:1", "rev": unknown},
            {"id": "doc:none", "rev": unknown},
            {"id": "doc:1", "rev": rev1},
        ]
    )
    assert results == [
        {
            "id": "doc:1",
            "docs": [
                {"ok": {"_id": "doc:1", "_rev": rev2, "v": 2, "_revisions": history(rev2, rev1)}}
            ],
        },
        {
            "id": "doc:2",
            "docs": [{"ok": {"_id": "doc:2", "_rev": other, "v": 3, "_revisions": history(other)}}],
        },
        {
            "id": "doc:1",
            "docs": [
                {
                    "error": {
                        "id": "doc:1",
                        "rev": unknown,
                        "error": "not_found",
                        "reason": "missing",
                    }
                }
            ],
        },
        {
            "id": "doc:none",
            "docs": [
                {
                    "error": {
                        "id": "doc:none",
                        "rev": unknown,
                        "error": "not_found",
                        "reason": "missing",
                    }
                }
            ],
        },
        {
            "id": "doc:1",
            "docs": [{"ok": {"_id": "doc:1", "_rev": rev1, "v": 1, "_revisions": history(rev1)}}],
        },
    ]
    assert database.bulk_get([]) == []


def test_bulk_docs_new_edits(database: Database) -> None:
    stale = database.put({"_id": "doc:old"})
    database.put({"_id": "doc:old", "_rev": stale, "v": 2})
    results = database.bulk_docs(
        [
            {"_id": "doc:new", "v": 1},
            {"_id": "doc:old", "_rev": stale, "v": 3},
            {"_id": "doc:other", "v": 1},
        ]
    )
    assert [set(item) for item in results] == [
        {"ok", "id", "rev"},
        {"id", "error", "reason"},
        {"ok", "id", "rev"},
    ]
    assert results[0]["ok"] is True and results[0]["id"] == "doc:new"
    assert is_rev(results[0]["rev"], 1)
    assert results[1]["id"] == "doc:old" and results[1]["error"] == "conflict"
    assert isinstance(results[1]["reason"], str)
    assert results[2]["id"] == "doc:other"
    assert database.get("doc:new")["_rev"] == results[0]["rev"]
    assert database.get("doc:old")["v"] == 2
    assert database.bulk_docs([]) == []


def test_bulk_docs_replicated(database: Database) -> None:
    a1, b2 = rev(1, "a"), rev(2, "b")
    doc = {"_id": "doc", "_rev": b2, "_revisions": history(b2, a1), "v": 2}
    assert database.bulk_docs([doc], new_edits=False) == []
    before = database.info()["update_seq"]
    # Re-sending an existing revision is a no-op: same body, no new seq (probed).
    assert database.bulk_docs([{**doc, "v": "changed"}], new_edits=False) == []
    assert database.info()["update_seq"] == before
    assert database.get("doc") == {"_id": "doc", "_rev": b2, "v": 2}
    assert len(database.changes()["results"]) == 1
    # Neither _rev nor _revisions: the whole request is refused, nothing is written.
    with pytest.raises(BadRequest):
        database.bulk_docs([{"_id": "fine", "_rev": a1}, {"_id": "norev"}], new_edits=False)
    with pytest.raises(DocNotFound):
        database.get("norev")


def test_malformed_requests_are_bad(database: Database) -> None:
    good = database.put({"_id": "doc", "v": 1})
    for call in (
        lambda: database.get("doc", rev="bad"),
        lambda: database.open_revs("doc", ["bad"]),
        lambda: database.revs_diff({"doc": ["bad"]}),
        lambda: database.put({"v": 1}),  # no _id
        lambda: database.put({"_id": "_bad"}),  # reserved prefix
        lambda: database.put({"_id": "x", "_foo": 1}),  # unknown special member
        lambda: database.bulk_docs([{"_id": "y"}, {"_id": "x", "_foo": 1}]),
        lambda: database.bulk_docs([{"_id": "y", "_rev": "bad"}], new_edits=False),
    ):
        with pytest.raises(BadRequest):
            call()
    with pytest.raises(DocNotFound):
        database.get("y")  # a refused bulk_docs writes nothing
    # In bulk_get a malformed revision is an error item; the id's other revisions arrive.
    bad, fine = database.bulk_get([{"id": "doc", "rev": "bad"}, {"id": "doc", "rev": good}])
    [item] = bad["docs"]
    assert isinstance(item["error"].pop("reason"), str)
    assert bad == {
        "id": "doc",
        "docs": [{"error": {"id": "doc", "rev": "bad", "error": "bad_request"}}],
    }
    assert fine == {
        "id": "doc",
        "docs": [{"ok": {"_id": "doc", "_rev": good, "v": 1, "_revisions": history(good)}}],
    }
    # A revision asked twice is listed once.
    assert database.revs_diff({"doc": [rev(2, "x"), rev(2, "x")]}) == {
        "doc": {"missing": [rev(2, "x")]}
    }


# --- attachments --------------------------------------------------------------------------


def test_attachments(database: Database) -> None:
    content = "材料清单".encode() + bytes(range(256))
    data = base64.b64encode(content).decode()
    digest = "md5-" + base64.b64encode(hashlib.md5(content).digest()).decode()
    rev1 = database.put(
        {
            "_id": "item:1",
            "_attachments": {"form.bin": {"content_type": "application/x-t", "data": data}},
        }
    )
    stub = {
        "content_type": "application/x-t",
        "digest": digest,
        "length": len(content),
        "revpos": 1,
        "stub": True,
    }
    assert database.get("item:1")["_attachments"] == {"form.bin": stub}
    inline = {"content_type": "application/x-t", "digest": digest, "revpos": 1, "data": data}
    assert database.get("item:1", attachments=True)["_attachments"] == {"form.bin": inline}
    assert database.get_attachment("item:1", "form.bin") == content

    # A new revision sending the stub keeps the attachment (revpos stays 1).
    current = database.get("item:1")
    rev2 = database.put({**current, "v": 2})
    assert database.get("item:1")["_attachments"] == {"form.bin": stub}
    assert database.get_attachment("item:1", "form.bin", rev=rev1) == content
    assert database.get_attachment("item:1", "form.bin", rev=rev2) == content

    [result] = database.bulk_get([{"id": "item:1", "rev": rev2}], attachments=True)
    assert result["docs"][0]["ok"]["_attachments"] == {"form.bin": inline}
    [item] = database.open_revs("item:1", [rev2], attachments=True)
    assert item["ok"]["_attachments"] == {"form.bin": inline}

    with pytest.raises(DocNotFound):
        database.get_attachment("item:1", "other.bin")
    with pytest.raises(DocNotFound):
        database.get_attachment("item:none", "form.bin")


def test_replicated_attachment_arrives_inline(database: Database) -> None:
    content = b"%PDF-1.4 template"
    a1 = rev(1, "att")
    database.bulk_docs(
        [
            {
                "_id": "item:1",
                "_rev": a1,
                "_attachments": {
                    "t.pdf": {
                        "content_type": "application/pdf",
                        "data": base64.b64encode(content).decode(),
                    }
                },
            }
        ],
        new_edits=False,
    )
    assert database.get_attachment("item:1", "t.pdf") == content
    assert database.get("item:1")["_attachments"]["t.pdf"]["length"] == len(content)


# --- _local documents ---------------------------------------------------------------------


def test_local_documents(database: Database) -> None:
    assert database.get_local("_local/checkpoint") is None
    before = database.info()["update_seq"]
    assert database.put_local({"_id": "_local/checkpoint", "seq": 1}) == "0-1"
    assert database.get_local("_local/checkpoint") == {
        "_id": "_local/checkpoint",
        "_rev": "0-1",
        "seq": 1,
    }
    assert database.put_local({"_id": "_local/checkpoint", "_rev": "0-1", "seq": 2}) == "0-2"
    with pytest.raises(CouchConflict):
        database.put_local({"_id": "_local/checkpoint", "_rev": "0-1", "seq": 3})
    with pytest.raises(CouchConflict):
        database.put_local({"_id": "_local/checkpoint", "seq": 3})
    assert database.get_local("_local/checkpoint")["seq"] == 2
    with pytest.raises(BadRequest):
        database.put_local({"_id": "checkpoint", "seq": 4})  # the prefix is part of the id
    assert database.changes()["results"] == []
    assert database.info()["update_seq"] == before
    assert database.info()["doc_count"] == 0


# --- remote only: what a server does and the adapter normalises ---------------------------


def test_remote_only_validate_doc_update_rejects_per_document(
    remote_database: RemoteDatabase,
) -> None:
    """validate_doc_update runs on the server only; the embedded stores run no JavaScript."""
    db = remote_database
    db.put({"_id": "_design/rules", "validate_doc_update": FORBID_FIELD})
    results = db.bulk_docs([{"_id": "ok:1"}, {"_id": "bad:1", "forbidden": 1}, {"_id": "ok:2"}])
    assert [item["id"] for item in results] == ["ok:1", "bad:1", "ok:2"]  # request order
    assert results[1] == {"id": "bad:1", "error": "forbidden", "reason": "forbidden is not allowed"}
    a1 = rev(1, "a")
    errors = db.bulk_docs(
        [
            {"_id": "ok:3", "_rev": a1},
            {"_id": "bad:2", "_rev": a1, "forbidden": 1},
            {"_id": "bad:3", "_rev": a1, "unauthorized": 1},
        ],
        new_edits=False,
    )
    assert errors == [
        {"id": "bad:2", "rev": a1, "error": "forbidden", "reason": "forbidden is not allowed"},
        {"id": "bad:3", "rev": a1, "error": "unauthorized", "reason": "log in first"},
    ]
    with pytest.raises(CouchRejected) as caught:
        db.put({"_id": "bad:4", "forbidden": 1})
    assert (caught.value.status, caught.value.error) == (403, "forbidden")
    with pytest.raises(CouchRejected) as caught:
        db.put({"_id": "bad:5", "unauthorized": 1})
    assert caught.value.status == 401
    assert db.get("ok:3")["_rev"] == a1
    assert db.revs_diff({"bad:2": [a1]}) == {"bad:2": {"missing": [a1]}}


def test_remote_only_gzip_request_bodies(couch_server: CouchUnderTest) -> None:
    name = couch_server.database_name("gzip")
    ensure_database(connect(couch_server.url), name)
    plain = RemoteDatabase(couch_server.url, name)
    packed = RemoteDatabase(couch_server.url, name, gzip=True)
    batch = [
        {"_id": f"case:{n:04}", "village": "甲村", "title": "路灯坏了" * 4} for n in range(300)
    ]
    body = json.dumps({"docs": batch}, ensure_ascii=False).encode()

    assert all(item.get("ok") for item in packed.bulk_docs(batch))
    assert packed.requests_sent == 1
    assert packed.bytes_sent < len(body) // 5  # repetitive JSON shrinks a lot
    assert plain.info()["doc_count"] == 300

    revs = {row["id"]: [c["rev"] for c in row["changes"]] for row in plain.changes()["results"]}
    revs["case:new"] = [rev(1, "new")]
    before = packed.bytes_sent
    assert packed.revs_diff(revs) == {"case:new": {"missing": [rev(1, "new")]}}
    assert plain.revs_diff(revs) == {"case:new": {"missing": [rev(1, "new")]}}
    assert packed.bytes_sent - before < plain.bytes_sent // 2

    # Small bodies are not worth compressing: sent as they are.
    before = packed.bytes_sent
    packed.revs_diff({"x": ["1-a"]})
    assert packed.bytes_sent - before == len(json.dumps({"x": ["1-a"]}).encode())


def _split_credentials(url: str) -> tuple[str, str]:
    """``url`` without ``user:password@``, and that ``user:password@`` ('' if none)."""
    parts = urlsplit(url)
    credentials, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=host)), f"{credentials}@" if credentials else ""


class _NoBulkGetProxy(http.server.ThreadingHTTPServer):
    """An HTTP proxy to the test server that answers 404 to ``_bulk_get``, like a server
    without it (CouchDB < 2.3); counts the ``_bulk_get`` requests it refused."""

    daemon_threads = True

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.refused = 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        """The proxy's URL (credentials are passed through in the Authorization header)."""
        return f"http://127.0.0.1:{self.server_address[1]}/"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _NoBulkGetProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self) -> None:
        if self.path.split("?")[0].endswith("/_bulk_get"):
            self.server.refused += 1
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._reply(404, "application/json", b'{"error":"not_found","reason":"missing"}')
            return
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length) if length else None
        request = urllib.request.Request(
            self.server.target + self.path, data=data, method=self.command
        )
        for header in ("Authorization", "Content-Type", "Accept", "Content-Encoding"):
            if self.headers.get(header):
                request.add_header(header, self.headers[header])
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = response.status, response.read()
                content_type = response.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
            content_type = exc.headers.get("Content-Type", "application/json")
        self._reply(status, content_type, body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


@pytest.fixture
def no_bulk_get_proxy(couch_server: CouchUnderTest) -> Iterator[_NoBulkGetProxy]:
    """A proxy to the module's server that has no ``_bulk_get``."""
    proxy = _NoBulkGetProxy(_split_credentials(couch_server.url)[0])
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()
    thread.join(timeout=5)


def _fetch_scenario(db: RemoteDatabase) -> tuple[list[Doc], list[Doc]]:
    """Write a conflicted document, then bulk_get known, unknown and deleted revisions."""
    a1, b2, c2, d3 = rev(1, "a"), rev(2, "b"), rev(2, "c"), rev(3, "d")
    db.bulk_docs(
        [
            {"_id": "doc", "_rev": b2, "_revisions": history(b2, a1), "side": "b"},
            {"_id": "doc", "_rev": d3, "_deleted": True, "_revisions": history(d3, c2, a1)},
        ],
        new_edits=False,
    )
    wanted = [
        {"id": "doc", "rev": b2},
        {"id": "doc", "rev": rev(9, "unknown")},
        {"id": "nobody", "rev": a1},
        {"id": "doc", "rev": d3},
    ]
    expected = [
        {"id": "doc", "docs": [{"ok": {"_id": "doc", "_rev": b2, "side": "b",
                                       "_revisions": history(b2, a1)}}]},
        {"id": "doc", "docs": [{"error": {"id": "doc", "rev": rev(9, "unknown"),
                                          "error": "not_found", "reason": "missing"}}]},
        {"id": "nobody", "docs": [{"error": {"id": "nobody", "rev": a1,
                                             "error": "not_found", "reason": "missing"}}]},
        {"id": "doc", "docs": [{"ok": {"_id": "doc", "_rev": d3, "_deleted": True,
                                       "_revisions": history(d3, c2, a1)}}]},
    ]  # fmt: skip
    return db.bulk_get(wanted), expected


def test_remote_only_bulk_get_fallback_when_asked(remote_database: RemoteDatabase) -> None:
    remote_database.use_bulk_get = False
    results, expected = _fetch_scenario(remote_database)
    assert results == expected


def test_remote_only_bulk_get_fallback_when_missing(
    couch_server: CouchUnderTest, no_bulk_get_proxy: _NoBulkGetProxy
) -> None:
    name = couch_server.database_name("nobulkget")
    ensure_database(connect(couch_server.url), name)
    credentials = _split_credentials(couch_server.url)[1]
    through_proxy = no_bulk_get_proxy.url.replace("//", f"//{credentials}", 1)
    db = RemoteDatabase(through_proxy, name)
    results, expected = _fetch_scenario(db)
    assert results == expected
    assert no_bulk_get_proxy.refused == 1
    assert db.use_bulk_get is False
    db.bulk_get([{"id": "doc", "rev": rev(1, "a")}])
    assert no_bulk_get_proxy.refused == 1  # remembered: not asked again


def test_remote_only_request_too_large(
    remote_database: RemoteDatabase, couch_server: CouchUnderTest
) -> None:
    config = connect(couch_server.url).resource(
        *(["_config"] if couch_server.pouch is not None else ["_node", "_local", "_config"])
    )
    config.put_json(
        ["couchdb", "max_document_size"],
        body=json.dumps("300"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with pytest.raises(RequestTooLarge):
            remote_database.bulk_docs([{"_id": "big", "text": "x" * 1000}])
        with pytest.raises(RequestTooLarge):
            remote_database.put({"_id": "big", "text": "x" * 1000})
    finally:
        config.delete_json(["couchdb", "max_document_size"])
    assert remote_database.put({"_id": "big", "text": "x" * 1000})


def test_remote_only_errors_of_the_server(remote_database: RemoteDatabase) -> None:
    missing = RemoteDatabase(remote_database.server, "contract_never_created")
    with pytest.raises(DocNotFound):
        missing.info()
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        unreachable = RemoteDatabase(f"http://127.0.0.1:{port}/", "any", timeout=2)
        with pytest.raises(CouchUnavailable):
            unreachable.info()
    with pytest.raises(BadRequest):  # crashes pouchdb-server if sent as a POST: never sent
        remote_database.changes(filter="_selector")
    with pytest.raises(BadRequest):  # both travel in the same query string
        remote_database.changes(filter="contract/by_village", query_params={"since": "0"})


def test_remote_only_identity_and_counters(
    remote_database: RemoteDatabase, couch_server: CouchUnderTest
) -> None:
    identity = remote_database.identity()
    assert identity.startswith("couchdb:") and identity.endswith("/" + remote_database.name)
    same_server = RemoteDatabase(connect(couch_server.url), remote_database.name)
    assert same_server.identity() == identity
    sent = remote_database.bytes_sent
    doc = {"_id": "case:1", "title": "路灯"}
    remote_database.put(doc)
    assert remote_database.bytes_sent - sent == len(json.dumps(doc, ensure_ascii=False).encode())
