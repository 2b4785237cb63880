"""The embedded SQLite store behaves like CouchDB: revisions, conflicts, changes, attachments."""

from __future__ import annotations

import base64
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync import revtree
from sync.database import Database
from sync.errors import BadRequest, CouchConflict, DocNotFound
from sync.filters import FILTERS, register
from sync.store import SQLiteStore, attachment_digest
from tests.unit.conftest import vectors


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh store in a real SQLite file."""
    db = SQLiteStore(tmp_path / "kiosk.sqlite")
    yield db
    db.close()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A second store, to play the other replica."""
    db = SQLiteStore(tmp_path / "other.sqlite")
    yield db
    db.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def copy_revs(source: SQLiteStore, target: SQLiteStore, doc_id: str) -> list[dict[str, Any]]:
    """Replicate every leaf of one document the way the replicator does (new_edits=false)."""
    docs = [item["ok"] for item in source.open_revs(doc_id, "all", attachments=True)]
    return target.bulk_docs(docs, new_edits=False)


def leaf_doc(doc_id: str, rev: str, deleted: bool = False, **body: Any) -> dict[str, Any]:
    doc = {"_id": doc_id, "_rev": rev, **body}
    if deleted:
        doc["_deleted"] = True
    return doc


# --- basics -----------------------------------------------------------------------------------


def test_store_satisfies_the_database_protocol(store: SQLiteStore) -> None:
    assert isinstance(store, Database)
    assert store.name == "kiosk"
    assert len(store.identity()) == 32


def test_empty_store_info(store: SQLiteStore) -> None:
    assert store.info() == {
        "db_name": "kiosk",
        "doc_count": 0,
        "update_seq": 0,
        "instance_start_time": "0",
    }


def test_crud_with_revisions(store: SQLiteStore) -> None:
    rev1 = store.put({"_id": "case-1", "type": "case", "n": 1})
    assert revtree.parse_rev(rev1)[0] == 1 and len(rev1) == 34
    assert store.get("case-1") == {"_id": "case-1", "_rev": rev1, "type": "case", "n": 1}

    rev2 = store.put({"_id": "case-1", "_rev": rev1, "type": "case", "n": 2})
    assert rev2.startswith("2-")
    assert store.get("case-1")["n"] == 2
    assert store.get("case-1", rev=rev1)["n"] == 1  # not compacted yet
    assert store.get("case-1", revs=True)["_revisions"] == {
        "start": 2,
        "ids": [rev2[2:], rev1[2:]],
    }

    with pytest.raises(CouchConflict):  # stale rev
        store.put({"_id": "case-1", "_rev": rev1, "n": 3})
    with pytest.raises(CouchConflict):  # no rev on a live document
        store.put({"_id": "case-1", "n": 3})
    with pytest.raises(CouchConflict):  # a rev for a document that does not exist
        store.put({"_id": "nobody", "_rev": rev1})

    rev3 = store.put({"_id": "case-1", "_rev": rev2, "_deleted": True})
    assert rev3.startswith("3-")
    with pytest.raises(DocNotFound, match="deleted"):
        store.get("case-1")
    assert store.get("case-1", rev=rev3) == {"_id": "case-1", "_rev": rev3, "_deleted": True}
    with pytest.raises(DocNotFound, match="missing"):
        store.get("nobody")
    with pytest.raises(DocNotFound):
        store.get("case-1", rev="2-" + "0" * 32)
    assert store.info()["doc_count"] == 0
    assert store.info()["update_seq"] == 3


def test_put_without_rev_on_a_deleted_document_extends_the_tombstone(store: SQLiteStore) -> None:
    rev1 = store.put({"_id": "d", "v": 1})
    rev2 = store.put({"_id": "d", "_rev": rev1, "_deleted": True})
    rev3 = store.put({"_id": "d", "v": 2})
    assert rev3.startswith("3-")  # probed on pouchdb-server: it came back as 3-…
    doc = store.get("d", revs=True, conflicts=True)
    assert doc["_revisions"]["ids"] == [rev3[2:], rev2[2:], rev1[2:]]
    assert "_conflicts" not in doc


def test_identical_edits_converge(store: SQLiteStore, other: SQLiteStore) -> None:
    for db in (store, other):
        rev = db.put({"_id": "x", "a": 1})
        db.put({"_id": "x", "_rev": rev, "a": 2, "b": [1, "二"]})
    assert store.get("x")["_rev"] == other.get("x")["_rev"]


@pytest.mark.parametrize(
    "doc",
    [
        {"_id": "_secret", "a": 1},
        {"_id": "", "a": 1},
        {"_id": "_design/", "a": 1},
        {"_id": "x", "_bogus": 1},
        {"_id": "x", "_rev": "not-a-rev!"[0:3]},
        {"_id": "x", "_rev": "1-" + "z" * 32},
        {"_id": "x", "n": float("nan")},
        {"_id": "x", "_attachments": {"a.txt": {"content_type": "text/plain", "data": "%%%"}}},
        {"_id": "x", "_attachments": {"_a.txt": {"content_type": "text/plain", "data": ""}}},
        {"_id": "x", "_attachments": {"a.txt": {"content_type": "text/plain"}}},
    ],
)
def test_malformed_documents_are_bad_requests_and_change_nothing(
    store: SQLiteStore, doc: dict[str, Any]
) -> None:
    with pytest.raises(BadRequest):
        store.put(doc)
    with pytest.raises(BadRequest):
        store.bulk_docs([{"_id": "fine"}, doc])
    assert store.info()["update_seq"] == 0


def test_put_needs_an_id(store: SQLiteStore) -> None:
    with pytest.raises(BadRequest):
        store.put({"no_id": True})


def test_design_documents_are_ordinary_documents(store: SQLiteStore) -> None:
    rev = store.put({"_id": "_design/sanji", "filters": {}})
    assert store.get("_design/sanji")["_rev"] == rev
    assert [r["id"] for r in store.changes()["results"]] == ["_design/sanji"]


def test_output_only_members_are_ignored_on_input(store: SQLiteStore) -> None:
    rev = store.put({"_id": "x", "a": 1, "_conflicts": ["1-a"], "_deleted_conflicts": []})
    assert store.get("x") == {"_id": "x", "_rev": rev, "a": 1}


# --- bulk_docs --------------------------------------------------------------------------------


def test_bulk_docs_new_edits_reports_each_document(store: SQLiteStore) -> None:
    rev = store.put({"_id": "a", "v": 1})
    results = store.bulk_docs([{"_id": "a", "v": 2}, {"_id": "b", "v": 1}, {"v": "auto id"}])
    assert results[0] == {"id": "a", "error": "conflict", "reason": "Document update conflict."}
    assert results[1]["ok"] is True and results[1]["id"] == "b" and results[1]["rev"][:2] == "1-"
    assert results[2]["ok"] is True and len(results[2]["id"]) == 32
    assert store.get("a")["_rev"] == rev
    assert store.get(results[2]["id"])["v"] == "auto id"


def test_bulk_docs_same_document_twice_in_one_batch(store: SQLiteStore) -> None:
    rev = store.put({"_id": "a", "v": 1})
    results = store.bulk_docs([{"_id": "a", "_rev": rev, "v": 2}, {"_id": "a", "_rev": rev}])
    assert results[0]["ok"] is True
    assert results[1]["error"] == "conflict"


def test_bulk_docs_replicated_returns_only_errors(store: SQLiteStore) -> None:
    docs = [
        {"_id": "a", "_rev": "3-c", "_revisions": {"start": 3, "ids": ["c", "b", "a"]}, "v": 3},
        {"_id": "b", "_rev": "1-x", "v": 1},
    ]
    assert store.bulk_docs(docs, new_edits=False) == []
    assert store.get("a", revs=True)["_revisions"] == {"start": 3, "ids": ["c", "b", "a"]}
    assert store.get("b")["_rev"] == "1-x"


def test_bulk_docs_replicated_without_any_rev_is_refused_whole(store: SQLiteStore) -> None:
    docs = [{"_id": "fine", "_rev": "1-a"}, {"_id": "c", "v": "no rev at all"}]
    with pytest.raises(BadRequest, match="Invalid rev format"):
        store.bulk_docs(docs, new_edits=False)
    assert store.info()["update_seq"] == 0


def test_resending_an_existing_revision_is_a_no_op(store: SQLiteStore) -> None:
    doc = {"_id": "a", "_rev": "2-b", "_revisions": {"start": 2, "ids": ["b", "a"]}, "v": 2}
    assert store.bulk_docs([doc], new_edits=False) == []
    seq = store.info()["update_seq"]
    assert store.bulk_docs([doc, {**doc, "v": "ignored"}], new_edits=False) == []
    # an ancestor we know only by id is not stored either
    assert store.bulk_docs([{"_id": "a", "_rev": "1-a", "v": 1}], new_edits=False) == []
    assert store.info()["update_seq"] == seq
    assert store.get("a")["v"] == 2
    assert len(store.changes()["results"]) == 1


def test_replicated_deletion_without_history(store: SQLiteStore) -> None:
    store.bulk_docs([leaf_doc("a", "1-a", v=1)], new_edits=False)
    store.bulk_docs(
        [
            {
                "_id": "a",
                "_rev": "2-b",
                "_revisions": {"start": 2, "ids": ["b", "a"]},
                "_deleted": True,
            }
        ],
        new_edits=False,
    )
    with pytest.raises(DocNotFound):
        store.get("a")
    # and a deletion of a rev with no known history is a separate, deleted, leaf
    store.bulk_docs([leaf_doc("a", "5-z", deleted=True)], new_edits=False)
    assert sorted(item["ok"]["_rev"] for item in store.open_revs("a", "all")) == ["2-b", "5-z"]


# --- conflicts --------------------------------------------------------------------------------


def test_basic_conflict_after_replication(store: SQLiteStore, other: SQLiteStore) -> None:
    """PouchDB "Test basic conflict" and "Test _conflicts key", through new_edits=false."""
    mine = store.put({"_id": "adoc", "foo": "bar"})
    theirs = other.put({"_id": "adoc", "bar": "baz"})
    assert copy_revs(other, store, "adoc") == []
    assert copy_revs(store, other, "adoc") == []
    winner, loser = sorted([mine, theirs], key=lambda r: revtree.parse_rev(r), reverse=True)
    for db in (store, other):
        doc = db.get("adoc", conflicts=True)
        assert doc["_rev"] == winner
        assert doc["_conflicts"] == [loser]
        assert db.info()["doc_count"] == 1
    assert "_conflicts" not in store.get("adoc")


def test_resolving_a_conflict_by_deleting_the_loser(store: SQLiteStore) -> None:
    """REPLICATION_PROTOCOL §2: deleting loser 7-g gave an 8-… tombstone; the winner stayed 7-h."""
    shared = ["f", "e", "d", "c", "b", "a"]
    store.bulk_docs(
        [
            {"_id": "x", "_rev": "7-h", "_revisions": {"start": 7, "ids": ["h", *shared]}, "w": 1},
            {"_id": "x", "_rev": "7-g", "_revisions": {"start": 7, "ids": ["g", *shared]}, "w": 0},
        ],
        new_edits=False,
    )
    assert store.get("x", conflicts=True)["_conflicts"] == ["7-g"]
    tombstone = store.put({"_id": "x", "_rev": "7-g", "_deleted": True})
    assert tombstone.startswith("8-")
    doc = store.get("x", conflicts=True)
    assert doc["_rev"] == "7-h" and "_conflicts" not in doc
    leaves = {item["ok"]["_rev"]: item["ok"] for item in store.open_revs("x", "all")}
    assert set(leaves) == {"7-h", tombstone}
    assert leaves[tombstone]["_deleted"] is True
    assert leaves[tombstone]["_revisions"]["ids"][:2] == [tombstone[2:], "g"]
    changes = store.changes(style="all_docs")["results"]
    assert changes[0]["changes"] == [{"rev": "7-h"}, {"rev": tombstone}]
    assert "deleted" not in changes[0]


def test_a_new_edit_of_a_losing_leaf_is_allowed(store: SQLiteStore) -> None:
    store.bulk_docs([leaf_doc("x", "1-a"), leaf_doc("x", "1-b")], new_edits=False)
    rev = store.put({"_id": "x", "_rev": "1-a", "fixed": True})
    assert rev.startswith("2-")
    assert store.get("x", conflicts=True)["_conflicts"] == ["1-b"]
    with pytest.raises(CouchConflict):  # 1-a is no longer a leaf
        store.put({"_id": "x", "_rev": "1-a"})


@pytest.mark.parametrize("case", vectors("winning_revisions")["cases"], ids=lambda c: c["winner"])
def test_winner_vectors_through_the_store(store: SQLiteStore, case: dict[str, Any]) -> None:
    docs = [leaf_doc("v", rev, deleted, body=rev) for rev, deleted in case["leaves"]]
    assert store.bulk_docs(docs, new_edits=False) == []
    all_leaves = sorted(item["ok"]["_rev"] for item in store.open_revs("v", "all"))
    assert all_leaves == sorted(rev for rev, _ in case["leaves"])
    row = store.changes(style="all_docs")["results"][0]
    assert row["changes"][0] == {"rev": case["winner"]}
    if case.get("deleted"):
        assert row["deleted"] is True
        with pytest.raises(DocNotFound):
            store.get("v")
        assert store.info()["doc_count"] == 0
    else:
        assert "deleted" not in row
        doc = store.get("v", conflicts=True)
        assert doc["_rev"] == case["winner"] and doc["body"] == case["winner"]
        assert sorted(doc.get("_conflicts", [])) == sorted(case["conflicts"])
        assert store.info()["doc_count"] == 1


def test_many_conflicts_count_as_one_document(store: SQLiteStore) -> None:
    """PouchDB "pull replication with many conflicts": 200 1-x leaves, doc_count 1."""
    docs = [leaf_doc("c", f"1-{i:03d}", n=i) for i in range(200)]
    assert store.bulk_docs(docs, new_edits=False) == []
    assert store.info()["doc_count"] == 1
    assert store.get("c")["_rev"] == "1-199"
    assert len(store.get("c", conflicts=True)["_conflicts"]) == 199
    assert len(store.open_revs("c", "all")) == 200


# --- tombstones -------------------------------------------------------------------------------


def test_tombstones_keep_their_body(store: SQLiteStore, other: SQLiteStore) -> None:
    """PouchDB 5904: a deleted document may carry fields, and they replicate."""
    rev = store.put({"_id": "t", "v": 1})
    gone = store.put({"_id": "t", "_rev": rev, "_deleted": True, "reason": "duplicate"})
    assert store.get("t", rev=gone) == {
        "_id": "t",
        "_rev": gone,
        "_deleted": True,
        "reason": "duplicate",
    }
    row = store.changes(include_docs=True)["results"][0]
    assert row["deleted"] is True
    assert row["doc"] == {"_id": "t", "_rev": gone, "_deleted": True, "reason": "duplicate"}
    assert copy_revs(store, other, "t") == []
    assert other.get("t", rev=gone)["reason"] == "duplicate"
    assert other.get("t", rev=gone, revs=True)["_revisions"]["ids"] == [gone[2:], rev[2:]]


# --- changes ----------------------------------------------------------------------------------


def test_changes_paging_lists_each_document_once_at_its_latest_seq(store: SQLiteStore) -> None:
    revs = {f"d{i:02d}": store.put({"_id": f"d{i:02d}", "i": i}) for i in range(25)}
    store.put({"_id": "d00", "_rev": revs["d00"], "i": "again"})
    seen: list[str] = []
    since: Any = 0
    pages = 0
    while True:
        page = store.changes(since=since, limit=10)
        if not page["results"]:
            break
        pages += 1
        seen += [row["id"] for row in page["results"]]
        assert page["last_seq"] == page["results"][-1]["seq"]
        since = page["last_seq"]
    assert pages == 3
    assert seen == [f"d{i:02d}" for i in range(1, 25)] + ["d00"]
    assert page == {"results": [], "last_seq": 26}
    first = store.changes(limit=10)
    assert [row["seq"] for row in first["results"]] == list(range(2, 12))
    # since may come back as a string (it is opaque to callers)
    assert store.changes(since="25")["results"][0]["id"] == "d00"
    assert store.changes(since="now")["results"] == []


def test_changes_rows_have_couchdb_shape(store: SQLiteStore) -> None:
    store.bulk_docs(
        [leaf_doc("x", "1-a"), leaf_doc("x", "1-b", deleted=True), leaf_doc("y", "1-c", True)],
        new_edits=False,
    )
    rows = store.changes(style="all_docs")["results"]
    assert rows == [
        {"seq": 2, "id": "x", "changes": [{"rev": "1-a"}, {"rev": "1-b"}]},
        {"seq": 3, "id": "y", "changes": [{"rev": "1-c"}], "deleted": True},
    ]
    assert store.changes()["results"][0]["changes"] == [{"rev": "1-a"}]


def test_changes_doc_ids_and_include_docs(store: SQLiteStore) -> None:
    for i in range(5):
        store.put({"_id": f"d{i}", "i": i})
    page = store.changes(doc_ids=["d3", "d1", "nope"], include_docs=True)
    assert [row["id"] for row in page["results"]] == ["d1", "d3"]
    assert page["results"][1]["doc"]["i"] == 3
    same = store.changes(filter="_doc_ids", doc_ids=["d3"])
    assert [row["id"] for row in same["results"]] == ["d3"]
    with pytest.raises(BadRequest):
        store.changes(filter="_doc_ids")


@register("test_store/by_kind")
def _by_kind(doc: dict[str, Any], query_params: Any) -> bool:
    return doc.get("kind") == query_params.get("kind")


def test_changes_named_filter_with_query_params(store: SQLiteStore) -> None:
    assert FILTERS["test_store/by_kind"] is _by_kind
    for i in range(6):
        store.put({"_id": f"d{i}", "kind": "case" if i % 2 else "status"})
    page = store.changes(filter="test_store/by_kind", query_params={"kind": "case"}, limit=2)
    assert [row["id"] for row in page["results"]] == ["d1", "d3"]
    rest = store.changes(
        since=page["last_seq"], filter="test_store/by_kind", query_params={"kind": "case"}
    )
    assert [row["id"] for row in rest["results"]] == ["d5"]
    # a fully filtered feed still moves last_seq on, so a checkpoint can advance
    none = store.changes(filter="test_store/by_kind", query_params={"kind": "other"}, limit=2)
    assert none["results"] == [] and none["last_seq"] == 6


def test_changes_filter_sees_each_leaf_in_all_docs_style(store: SQLiteStore) -> None:
    store.bulk_docs(
        [leaf_doc("x", "1-a", kind="case"), leaf_doc("x", "1-b", kind="status")],
        new_edits=False,
    )
    params = {"kind": "case"}
    rows = store.changes(style="all_docs", filter="test_store/by_kind", query_params=params)
    assert rows["results"][0]["changes"] == [{"rev": "1-a"}]
    # main_only filters the winner (1-b), which does not pass
    assert store.changes(filter="test_store/by_kind", query_params=params)["results"] == []


def test_changes_design_filter(store: SQLiteStore) -> None:
    store.put({"_id": "_design/a"})
    store.put({"_id": "plain"})
    assert [r["id"] for r in store.changes(filter="_design")["results"]] == ["_design/a"]


def test_unknown_or_malformed_filters_are_clear_errors(store: SQLiteStore) -> None:
    store.put({"_id": "a"})
    with pytest.raises(DocNotFound, match="missing filter"):
        store.changes(filter="nosuch/filter")
    with pytest.raises(BadRequest):
        store.changes(filter="noslash")
    with pytest.raises(BadRequest):
        store.changes(filter="_selector")
    with pytest.raises(BadRequest):
        store.changes(since="1-g1AAAA")
    with pytest.raises(BadRequest):
        store.changes(limit=-1)


# --- revs_diff and bulk_get -------------------------------------------------------------------


def test_revs_diff(store: SQLiteStore) -> None:
    store.bulk_docs(
        [{"_id": "a", "_rev": "2-b", "_revisions": {"start": 2, "ids": ["b", "a"]}}],
        new_edits=False,
    )
    assert store.revs_diff({"a": ["1-a", "2-b"]}) == {}
    assert store.revs_diff({"a": ["2-b", "3-c", "1-z", "3-c"], "new": ["1-q"]}) == {
        "a": {"missing": ["3-c", "1-z"]},
        "new": {"missing": ["1-q"]},
    }
    with pytest.raises(BadRequest):
        store.revs_diff({"a": ["garbage"]})


def test_bulk_get_in_couchdb_result_shape(store: SQLiteStore) -> None:
    store.bulk_docs(
        [leaf_doc("a", "1-a", v=1), leaf_doc("a", "1-b", v=2), leaf_doc("gone", "1-g", True)],
        new_edits=False,
    )
    results = store.bulk_get(
        [
            {"id": "a", "rev": "1-a"},
            {"id": "a", "rev": "9-zz"},
            {"id": "missing", "rev": "1-x"},
            {"id": "missing"},
            {"id": "a"},
            {"id": "gone", "rev": "1-g"},
        ]
    )
    assert results[0] == {
        "id": "a",
        "docs": [
            {"ok": {"_id": "a", "_rev": "1-a", "v": 1, "_revisions": {"start": 1, "ids": ["a"]}}}
        ],
    }
    not_found = {"error": "not_found", "reason": "missing"}
    assert results[1] == {"id": "a", "docs": [{"error": {"id": "a", "rev": "9-zz", **not_found}}]}
    assert results[2]["docs"] == [{"error": {"id": "missing", "rev": "1-x", **not_found}}]
    assert results[3]["docs"] == [{"error": {"id": "missing", "rev": None, **not_found}}]
    assert [d["ok"]["_rev"] for d in results[4]["docs"]] == ["1-b", "1-a"]
    assert results[5]["docs"][0]["ok"]["_deleted"] is True


def test_open_revs(store: SQLiteStore) -> None:
    with pytest.raises(DocNotFound):
        store.open_revs("nothing", "all")
    assert store.open_revs("nothing", ["1-a"]) == [{"missing": "1-a"}]
    store.bulk_docs([leaf_doc("a", "1-a")], new_edits=False)
    assert store.open_revs("a", ["1-a", "2-b"]) == [
        {"ok": {"_id": "a", "_rev": "1-a", "_revisions": {"start": 1, "ids": ["a"]}}},
        {"missing": "2-b"},
    ]


# --- revs_limit, compaction -------------------------------------------------------------------


def test_stemming_at_a_small_revs_limit(store: SQLiteStore) -> None:
    store.revs_limit = 5
    rev = store.put({"_id": "s", "g": 1})
    first = rev
    for g in range(2, 11):
        rev = store.put({"_id": "s", "_rev": rev, "g": g})
    assert rev.startswith("10-")
    history = store.get("s", revs=True)["_revisions"]
    assert history["start"] == 10 and len(history["ids"]) == 5
    # stemmed revisions are forgotten: unknown to revs_diff, gone from storage
    assert store.revs_diff({"s": [first]}) == {"s": {"missing": [first]}}
    with pytest.raises(DocNotFound):
        store.get("s", rev=first)


def test_replicated_history_longer_than_revs_limit_is_stemmed(store: SQLiteStore) -> None:
    store.revs_limit = 5
    ids = [f"h{g}" for g in range(10, 0, -1)]
    doc = {"_id": "r", "_rev": "10-h10", "_revisions": {"start": 10, "ids": ids}}
    assert store.bulk_docs([doc], new_edits=False) == []
    assert store.get("r", revs=True)["_revisions"] == {"start": 10, "ids": ids[:5]}


def test_default_revs_limit_is_1000(store: SQLiteStore) -> None:
    assert store.revs_limit == 1000
    ids = [f"h{g}" for g in range(1005, 0, -1)]
    doc = {"_id": "r", "_rev": "1005-h1005", "_revisions": {"start": 1005, "ids": ids}}
    store.bulk_docs([doc], new_edits=False)
    assert len(store.get("r", revs=True)["_revisions"]["ids"]) == 1000


def test_compaction_keeps_revision_ids_but_drops_bodies(store: SQLiteStore) -> None:
    rev1 = store.put({"_id": "c", "v": 1})
    rev2 = store.put({"_id": "c", "_rev": rev1, "v": 2})
    store.bulk_docs(
        [{"_id": "c", "_rev": "2-other", "_revisions": {"start": 2, "ids": ["other", rev1[2:]]}}],
        new_edits=False,
    )
    store.compact()
    with pytest.raises(DocNotFound):
        store.get("c", rev=rev1)
    assert store.open_revs("c", [rev1]) == [{"missing": rev1}]
    assert store.revs_diff({"c": [rev1, rev2, "2-other"]}) == {}  # CouchDB: known, not missing
    assert store.get("c", rev=rev2)["v"] == 2  # leaves keep their bodies
    assert store.get("c", rev="2-other", revs=True)["_revisions"]["ids"] == ["other", rev1[2:]]
    assert store.info()["doc_count"] == 1


def test_auto_compaction_drops_bodies_as_they_stop_being_leaves(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "auto.sqlite", auto_compaction=True) as db:
        rev1 = db.put({"_id": "a", "v": 1})
        db.put({"_id": "a", "_rev": rev1, "v": 2})
        with pytest.raises(DocNotFound):
            db.get("a", rev=rev1)


# --- attachments ------------------------------------------------------------------------------


def test_attachments_round_trip(store: SQLiteStore) -> None:
    data = "一次性告知".encode()
    rev1 = store.put(
        {
            "_id": "m",
            "_attachments": {"notice.txt": {"content_type": "text/plain", "data": b64(data)}},
        }
    )
    stub = store.get("m")["_attachments"]["notice.txt"]
    assert stub == {
        "content_type": "text/plain",
        "revpos": 1,
        "digest": attachment_digest(data),
        "length": len(data),
        "stub": True,
    }
    assert stub["digest"].startswith("md5-")
    inline = store.get("m", attachments=True)["_attachments"]["notice.txt"]
    assert base64.b64decode(inline["data"]) == data and inline["revpos"] == 1
    assert store.get_attachment("m", "notice.txt") == data

    # an edit that sends the stub keeps the attachment and its revpos
    rev2 = store.put({"_id": "m", "_rev": rev1, "x": 1, "_attachments": {"notice.txt": stub}})
    assert store.get("m")["_attachments"]["notice.txt"]["revpos"] == 1
    assert store.get_attachment("m", "notice.txt", rev=rev2) == data
    # an edit without _attachments drops them
    rev3 = store.put({"_id": "m", "_rev": rev2, "x": 2})
    assert "_attachments" not in store.get("m")
    with pytest.raises(DocNotFound):
        store.get_attachment("m", "notice.txt")
    assert store.get_attachment("m", "notice.txt", rev=rev1) == data
    with pytest.raises(DocNotFound):
        store.get_attachment("m", "nothing.txt", rev=rev3)


def test_attachments_are_stored_once_per_content(store: SQLiteStore) -> None:
    blob = {"content_type": "application/pdf", "data": b64(b"%PDF same bytes")}
    store.put({"_id": "a", "_attachments": {"form.pdf": blob}})
    store.put({"_id": "b", "_attachments": {"copy.pdf": blob, "other.pdf": blob}})
    count = sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM attachments").fetchone()[0]
    assert count == 1


def test_compaction_removes_attachments_only_old_revisions_used(store: SQLiteStore) -> None:
    old = {"content_type": "text/plain", "data": b64(b"old")}
    keep = {"content_type": "text/plain", "data": b64(b"keep")}
    rev1 = store.put({"_id": "a", "_attachments": {"o.txt": old, "k.txt": keep}})
    store.put(
        {
            "_id": "a",
            "_rev": rev1,
            "_attachments": {"k.txt": store.get("a")["_attachments"]["k.txt"]},
        }
    )
    store.compact()
    count = sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM attachments").fetchone()[0]
    assert count == 1
    assert store.get_attachment("a", "k.txt") == b"keep"


def test_unknown_stub_is_an_error(store: SQLiteStore) -> None:
    stub = {"stub": True, "content_type": "text/plain", "digest": "md5-nothing", "revpos": 1}
    with pytest.raises(BadRequest, match="missing_stub"):
        store.put({"_id": "a", "_attachments": {"x.txt": stub}})
    errors = store.bulk_docs(
        [
            {
                "_id": "a",
                "_rev": "2-b",
                "_revisions": {"start": 2, "ids": ["b", "a"]},
                "_attachments": {"x.txt": stub},
            }
        ],
        new_edits=False,
    )
    assert errors == [
        {
            "id": "a",
            "rev": "2-b",
            "error": "missing_stub",
            "reason": "Invalid attachment stub in a for x.txt",
        }
    ]
    assert store.info()["update_seq"] == 0


def test_replicated_stubs_resolve_against_ancestors(store: SQLiteStore, other: SQLiteStore) -> None:
    data = b"catalogue template"
    rev1 = store.put(
        {"_id": "t", "_attachments": {"t.doc": {"content_type": "x/y", "data": b64(data)}}}
    )
    assert copy_revs(store, other, "t") == []
    rev2 = store.put(
        {"_id": "t", "_rev": rev1, "v": 2, "_attachments": store.get("t")["_attachments"]}
    )
    # the replicator asks for attachments since the target's leaf: only a stub comes over
    [entry] = store.bulk_get([{"id": "t", "rev": rev2, "atts_since": [rev1]}], attachments=True)
    fetched = entry["docs"][0]["ok"]
    assert fetched["_attachments"]["t.doc"]["stub"] is True
    assert other.bulk_docs([fetched], new_edits=False) == []
    assert other.get_attachment("t", "t.doc", rev=rev2) == data
    # without atts_since, attachments=True inlines everything
    [entry] = store.bulk_get([{"id": "t", "rev": rev2}], attachments=True)
    assert base64.b64decode(entry["docs"][0]["ok"]["_attachments"]["t.doc"]["data"]) == data


# --- local documents --------------------------------------------------------------------------


def test_local_documents(store: SQLiteStore) -> None:
    assert store.get_local("_local/rep") is None
    rev = store.put_local({"_id": "_local/rep", "last_seq": 5})
    assert rev == "0-1"
    assert store.get_local("_local/rep") == {"_id": "_local/rep", "_rev": "0-1", "last_seq": 5}
    assert store.get_local("rep") == store.get_local("_local/rep")
    assert store.get("_local/rep")["last_seq"] == 5
    with pytest.raises(CouchConflict):
        store.put_local({"_id": "_local/rep", "last_seq": 6})  # no rev
    with pytest.raises(CouchConflict):
        store.put_local({"_id": "_local/rep", "_rev": "0-7", "last_seq": 6})  # stale rev
    assert store.put_local({"_id": "_local/rep", "_rev": "0-1", "last_seq": 6}) == "0-2"
    assert store.put({"_id": "_local/other", "x": 1}) == "0-1"
    # never in changes, never counted, never bumps the sequence
    assert store.changes()["results"] == []
    assert store.info()["update_seq"] == 0 and store.info()["doc_count"] == 0
    assert store.put_local({"_id": "_local/rep", "_rev": "0-2", "_deleted": True}) == "0-0"
    assert store.get_local("_local/rep") is None
    with pytest.raises(DocNotFound):
        store.get("_local/rep")
    with pytest.raises(BadRequest):
        store.put_local({"_id": "_local/rep", "_rev": "1-abc"})
    with pytest.raises(BadRequest):
        store.put_local({"_id": "not-local"})


# --- persistence and threads ------------------------------------------------------------------


def test_reopen_persists_everything(tmp_path: Path) -> None:
    path = tmp_path / "persist.sqlite"
    with SQLiteStore(path) as db:
        identity = db.identity()
        rev = db.put(
            {"_id": "a", "_attachments": {"f": {"content_type": "t/p", "data": b64(b"F")}}}
        )
        db.put({"_id": "a", "_rev": rev, "_deleted": True, "why": "test"})
        db.bulk_docs([leaf_doc("b", "1-x", v=1), leaf_doc("b", "1-y", v=2)], new_edits=False)
        db.put_local({"_id": "_local/cp", "seq": 3})
        info, changes = db.info(), db.changes(style="all_docs", include_docs=True)
    with SQLiteStore(path, name="renamed") as db:
        assert db.identity() == identity
        assert db.info() == {**info, "db_name": "renamed"}
        assert db.changes(style="all_docs", include_docs=True) == changes
        assert db.get("b", conflicts=True)["_conflicts"] == ["1-x"]
        assert db.get_attachment("a", "f", rev=rev) == b"F"
        assert db.get_local("_local/cp")["seq"] == 3
        assert db.put({"_id": "c"}).startswith("1-")
        assert db.info()["update_seq"] == info["update_seq"] + 1


def test_concurrent_writers_from_threads(store: SQLiteStore) -> None:
    def write(thread: int) -> None:
        for i in range(50):
            store.put({"_id": f"t{thread}-{i}"})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.info()["doc_count"] == 200
    seqs = [row["seq"] for row in store.changes()["results"]]
    assert seqs == list(range(1, 201))


def test_a_second_connection_to_the_same_file_sees_the_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        one.put({"_id": "x"})
        two.put({"_id": "y"})
        assert one.info()["update_seq"] == two.info()["update_seq"] == 2
        assert one.identity() == two.identity()


# --- with the replicator --------------------------------------------------------------------------


def test_the_replicator_converges_two_stores(store: SQLiteStore, other: SQLiteStore) -> None:
    from sync.replicator import Replication, replicate

    for i in range(30):
        store.put({"_id": f"case-{i:02d}", "i": i})
    rev = store.put({"_id": "gone", "v": 1})
    store.put({"_id": "gone", "_rev": rev, "_deleted": True, "why": "dup"})
    store.put({"_id": "att", "_attachments": {"f": {"content_type": "t/p", "data": b64(b"F")}}})
    other.put({"_id": "case-01", "theirs": True})

    there = replicate(Replication(store, other, batch_size=7))
    assert there.docs_written == 32 and there.doc_write_failures == 0
    back = replicate(Replication(other, store))
    assert back.docs_written == 1
    assert replicate(Replication(store, other, batch_size=7)).docs_written == 0
    for db in (store, other):
        assert db.info()["doc_count"] == 31
        assert len(db.get("case-01", conflicts=True)["_conflicts"]) == 1
        assert db.get_attachment("att", "f") == b"F"
    assert store.get("case-01", conflicts=True) == other.get("case-01", conflicts=True)
    assert other.open_revs("gone", "all")[0]["ok"]["why"] == "dup"


def test_upper_case_hex_revisions_are_normalised(store: SQLiteStore) -> None:
    rev = "1-" + "AB" * 16
    assert store.bulk_docs([leaf_doc("u", rev, v=1)], new_edits=False) == []
    assert store.get("u")["_rev"] == rev.lower()
    assert store.get("u", rev=rev)["v"] == 1
    assert store.revs_diff({"u": [rev]}) == {}


def test_count_changed_counts_by_id_prefix_after_a_seq(store: SQLiteStore) -> None:
    store.bulk_docs(
        [{"_id": f"case:{n}"} for n in range(3)]
        + [{"_id": f"case_event:{n}"} for n in range(2)]
        + [{"_id": "casebook"}, {"_id": "kiosk_status:x"}, {"_id": "case;"}]
    )
    assert store.count_changed(0, ("case:", "case_event:")) == 5
    assert store.count_changed(0, ("kiosk_status:",)) == 1
    assert store.count_changed(0, ()) == 0
    seq = store.info()["update_seq"]
    assert store.count_changed(seq, ("case:",)) == 0
    store.put({"_id": "case:0", "_rev": store.get("case:0")["_rev"], "again": True})
    assert store.count_changed(seq, ("case:", "case_event:")) == 1
