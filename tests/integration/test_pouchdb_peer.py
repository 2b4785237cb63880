"""A real PouchDB peer: Node PouchDB 7.3.1 and the embedded store edit copies of one database.

Both replicate through pouchdb-server — the kiosk store with our replicator, PouchDB (memory
adapter, in ``tests/peers/pouchdb_peer.js``) with its own — over several rounds of creates,
updates, deletes, attachments and concurrent edits that conflict on both sides. After every
round each replica (PouchDB, the embedded store, pouchdb-server) holds the same documents with
the same winner, the same leaves (deleted or not) and the same winning body.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.cases import Origin, Person, case_to_doc, new_case
from core.catalogue import Mode
from core.clock import HlcClock
from sync.couch import connect, ensure_database
from sync.database import Database, Doc
from sync.errors import DocNotFound
from sync.remote import RemoteDatabase
from sync.replicator import Replication, replicate
from sync.store import SQLiteStore
from tests.conftest import CouchUnderTest
from tests.factories import ITEM, START, TOWNSHIP, VILLAGE
from tests.peers.pouchdb import PouchPeer

KIOSK = Origin(VILLAGE, "k7f3a9")
PEER_DB = "kiosk_copy"  # the PouchDB peer's in-memory database


def case_docs(count: int) -> list[Doc]:
    """``count`` case documents as the kiosk writes them at intake."""
    clock = HlcClock(KIOSK.key, lambda: int(START.timestamp() * 1000))
    return [
        case_to_doc(
            new_case(
                origin=KIOSK,
                counter=n,
                hlc=clock.tick(),
                wall_time=START,
                author="jg.v201",
                village=VILLAGE,
                township=TOWNSHIP,
                item=ITEM,
                catalogue_version=1,
                applicant=Person(
                    name="王大爷", id_number="500109193805120013", phone="13800000000"
                ),
                mode=Mode.AGENCY,
                handling_unit=TOWNSHIP,
            )
        )
        for n in range(1, count + 1)
    ]


def rev(generation: int, seed: str) -> str:
    """A CouchDB-style revision id (32 lowercase hex)."""
    return f"{generation}-{hashlib.md5(seed.encode()).hexdigest()}"


def attachment(text: str, content_type: str = "text/plain") -> dict[str, str]:
    """An inline attachment."""
    return {"content_type": content_type, "data": base64.b64encode(text.encode()).decode()}


def normalise(doc: Doc) -> Doc:
    """A revision's body as the peer reports it: no ``_rev``/``_revisions``, attachments as
    content type and base64 data only."""
    body = {k: v for k, v in doc.items() if k not in ("_rev", "_revisions")}
    if "_attachments" in body:
        body["_attachments"] = {
            name: {"content_type": a["content_type"], "data": a["data"]}
            for name, a in body["_attachments"].items()
        }
    return body


def dump(db: Database) -> dict[str, Any]:
    """Every document as ``pouchdb_peer.js`` dumps one: winner (a deleted one too), whether it
    is deleted, sorted ``[rev, deleted]`` leaves and the winner's body with attachment data."""
    out: dict[str, Any] = {}
    since: Any = 0
    while page := db.changes(since=since, limit=100)["results"]:  # main_only: the winner
        for row in page:
            winner = row["changes"][0]["rev"]
            leaves = [
                i["ok"] for i in db.open_revs(row["id"], "all", attachments=True) if "ok" in i
            ]
            body = next(normalise(doc) for doc in leaves if doc["_rev"] == winner)
            out[row["id"]] = {
                "winner": winner,
                "deleted": bool(row.get("deleted")),
                "leaves": sorted([doc["_rev"], bool(doc.get("_deleted"))] for doc in leaves),
                "body": body,
            }
            if not row.get("deleted"):  # the winner get() reads agrees with the feed's
                assert db.get(row["id"])["_rev"] == winner
        since = page[-1]["seq"]
    return out


class Network:
    """A kiosk store, a PouchDB peer and the pouchdb-server database they both sync with."""

    def __init__(self, kiosk: SQLiteStore, peer: PouchPeer, server: RemoteDatabase, url: str):
        self.kiosk, self.peer, self.server, self.url = kiosk, peer, server, url

    def sync(self) -> None:
        """One round, both directions for both peers: after it every replica has every edit."""
        pushed = replicate(Replication(self.kiosk, self.server, batch_size=7))
        assert pushed.doc_write_failures == 0
        pouch_push = self.peer.replicate(PEER_DB, self.url, batch_size=5)
        assert pouch_push["ok"] and pouch_push["doc_write_failures"] == 0, pouch_push
        pulled = replicate(Replication(self.server, self.kiosk, batch_size=7))
        assert pulled.doc_write_failures == 0
        pouch_pull = self.peer.replicate(self.url, PEER_DB, batch_size=5)
        assert pouch_pull["ok"] and pouch_pull["doc_write_failures"] == 0, pouch_pull

    def assert_converged(self) -> dict[str, Any]:
        """The three replicas agree document by document; return the common state."""
        pouch = self.peer.dump(PEER_DB)
        kiosk = dump(self.kiosk)
        server = dump(self.server)
        assert kiosk.keys() == pouch.keys() == server.keys()
        for doc_id in pouch:
            assert kiosk[doc_id] == pouch[doc_id], f"{doc_id}: kiosk store and PouchDB differ"
            assert server[doc_id] == pouch[doc_id], f"{doc_id}: pouchdb-server and PouchDB differ"
        return pouch

    # -- edits on the kiosk store ----------------------------------------------------------

    def kiosk_update(self, doc_id: str, **changes: Any) -> str:
        """Edit the kiosk's winning revision."""
        return self.kiosk.put({**self.kiosk.get(doc_id, attachments=True), **changes})

    def kiosk_delete(self, doc_id: str) -> str:
        """Delete the kiosk's winning revision."""
        return self.kiosk.put({**self.kiosk.get(doc_id), "_deleted": True})

    # -- edits on the PouchDB peer ---------------------------------------------------------

    def pouch_update(self, doc_id: str, **changes: Any) -> str:
        """Edit PouchDB's winning revision."""
        current = self.peer.get(PEER_DB, doc_id, attachments=True)
        return self.peer.put(PEER_DB, {**current, **changes})

    def pouch_delete(self, doc_id: str) -> str:
        """Delete PouchDB's winning revision."""
        return self.peer.put(PEER_DB, {**self.peer.get(PEER_DB, doc_id), "_deleted": True})


@pytest.fixture
def peer() -> Iterator[PouchPeer]:
    """A running PouchDB peer."""
    with PouchPeer() as running:
        yield running


@pytest.fixture
def server_db(couch_server: CouchUnderTest) -> Iterator[tuple[RemoteDatabase, str]]:
    """A fresh database on the server, as a RemoteDatabase (gzip bodies) and a URL."""
    name = couch_server.database_name("peer")
    ensure_database(connect(couch_server.url), name)
    yield RemoteDatabase(couch_server.url, name, gzip=True), couch_server.url + name
    couch_server.check_alive()


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[SQLiteStore]:
    """An empty kiosk store."""
    store = SQLiteStore(tmp_path / "kiosk.sqlite3")
    yield store
    store.close()


def test_pouchdb_and_the_kiosk_store_edit_one_database_and_converge(
    kiosk: SQLiteStore, peer: PouchPeer, server_db: tuple[RemoteDatabase, str]
) -> None:
    net = Network(kiosk, peer, *server_db)
    cases = case_docs(12)
    ids = [doc["_id"] for doc in cases]

    # Round 0: the kiosk opens cases and notes; PouchDB gets a copy through the server.
    assert all(r.get("ok") for r in kiosk.bulk_docs(cases))
    kiosk.put({"_id": "note:photo", "text": "门牌", "_attachments": {"a.txt": attachment("v1")}})
    kiosk.put({"_id": "note:gone", "text": "deleted before anyone saw it"})
    net.kiosk_delete("note:gone")
    net.sync()
    state = net.assert_converged()
    assert len(state) == 14 and state["note:gone"]["deleted"]

    # Round 1: both sides edit; the same documents concurrently (conflicts on both sides).
    net.kiosk_update(ids[0], note="kiosk: 补充材料")  # both edit 0: conflict
    net.pouch_update(ids[0], note="pouch: 已受理")
    net.kiosk_update(ids[1], note="kiosk edits while pouch deletes")  # edit vs delete
    net.pouch_delete(ids[1])
    net.kiosk_delete(ids[2])  # plain deletes from either side
    net.pouch_delete(ids[3])
    net.pouch_update(ids[4], _attachments={"scan.png": attachment("\x89PNG...", "image/png")})
    net.kiosk_update("note:photo", _attachments={"a.txt": attachment("v2 from kiosk")})
    net.pouch_update("note:photo", _attachments={"a.txt": attachment("v2 from pouch")})
    kiosk.put({"_id": "note:both", "by": "kiosk"})  # created independently on both sides
    peer.put(PEER_DB, {"_id": "note:both", "by": "pouch"})
    peer.put(PEER_DB, {"_id": "note:pouch", "text": "a PouchDB note"})
    net.sync()
    state = net.assert_converged()
    for doc_id in (ids[0], "note:photo", "note:both"):
        assert len(state[doc_id]["leaves"]) == 2, f"{doc_id} should be in conflict"
    assert not state[ids[1]]["deleted"]  # a live leaf beats a tombstone
    assert state[ids[2]]["deleted"] and state[ids[3]]["deleted"]
    assert "scan.png" in state[ids[4]]["body"]["_attachments"]

    # Round 2: PouchDB resolves one conflict, the kiosk another, and both edit on.
    losing = [r for r, _ in state[ids[0]]["leaves"] if r != state[ids[0]]["winner"]]
    peer.bulk_docs(
        PEER_DB,
        [
            {**peer.get(PEER_DB, ids[0]), "note": "merged by pouch"},
            *({"_id": ids[0], "_rev": r, "_deleted": True} for r in losing),
        ],
    )
    both = kiosk.get("note:both", conflicts=True)
    kiosk.bulk_docs(
        [
            {**both, "by": "kiosk and pouch"},
            *({"_id": "note:both", "_rev": r, "_deleted": True} for r in both["_conflicts"]),
        ]
    )
    net.kiosk_update(ids[5], _attachments={"sig.txt": attachment("签名")})
    net.pouch_update(ids[6], note="pouch edit 1")
    net.pouch_update(ids[6], note="pouch edit 2")  # a longer branch than the kiosk's
    net.kiosk_update(ids[6], note="kiosk edit 1")
    kiosk.put({"_id": ids[2], "note": "reopened on the kiosk"})  # extends the tombstone
    net.sync()
    state = net.assert_converged()
    assert state[ids[0]]["body"]["note"] == "merged by pouch"
    assert sum(not deleted for _, deleted in state[ids[0]]["leaves"]) == 1
    assert state["note:both"]["body"]["by"] == "kiosk and pouch"
    assert state[ids[6]]["body"]["note"] == "pouch edit 2"  # generation 3 beats 2
    assert not state[ids[2]]["deleted"] and state[ids[2]]["winner"].startswith("3-")

    # Round 3: conflicting histories written as they are (new_edits=false) on both sides.
    kiosk.bulk_docs(
        [{"_id": "note:many", "_rev": rev(1, f"k{i}"), "n": i} for i in range(6)], new_edits=False
    )
    peer.bulk_docs(
        PEER_DB,
        [{"_id": "note:many", "_rev": rev(1, f"p{i}"), "n": i} for i in range(6)]
        + [{"_id": "note:many", "_rev": rev(1, "p-dead"), "_deleted": True}],
        new_edits=False,
    )
    net.sync()
    state = net.assert_converged()
    assert len(state["note:many"]["leaves"]) == 13

    # Round 4: nothing new: every replication transfers nothing and the state stays.
    assert replicate(Replication(kiosk, net.server)).docs_written == 0
    assert peer.replicate(net.url, PEER_DB)["docs_written"] == 0
    assert net.assert_converged() == state


def test_each_replicator_reads_what_the_other_wrote_on_the_server(
    kiosk: SQLiteStore,
    peer: PouchPeer,
    couch_server: CouchUnderTest,
    tmp_path: Path,
) -> None:
    """PouchDB pulls a server database only our replicator filled; our replicator pulls one
    only PouchDB filled. Conflicts, tombstones with bodies and attachments come through."""
    couch = connect(couch_server.url)
    ours, theirs = couch_server.database_name("ours"), couch_server.database_name("theirs")
    for name in (ours, theirs):
        ensure_database(couch, name)

    # Our replicator fills `ours` from the kiosk store; PouchDB pulls it into memory.
    docs = case_docs(30)
    kiosk.bulk_docs(docs)
    kiosk.put({**kiosk.get(docs[0]["_id"]), "_deleted": True, "reason": "duplicate"})
    kiosk.put({**kiosk.get(docs[1]["_id"]), "_attachments": {"id.jpg": attachment("jpeg")}})
    kiosk.bulk_docs(
        [{"_id": "c", "_rev": rev(1, f"c{i}"), "_deleted": i % 3 == 0} for i in range(9)],
        new_edits=False,
    )
    server_ours = RemoteDatabase(couch_server.url, ours, gzip=True)
    assert replicate(Replication(kiosk, server_ours, batch_size=8)).docs_written == 39
    result = peer.replicate(couch_server.url + ours, "from_ours", batch_size=8)
    assert result["ok"] and result["docs_written"] == 39
    expected = dump(kiosk)
    assert peer.dump("from_ours") == expected == dump(server_ours)
    assert expected[docs[0]["_id"]]["body"]["reason"] == "duplicate"
    assert len(expected["c"]["leaves"]) == 9

    # PouchDB fills `theirs`; our replicator pulls it into a fresh kiosk store.
    peer.bulk_docs("mine", docs[:20])
    peer.put("mine", {**peer.get("mine", docs[0]["_id"]), "_deleted": True, "why": "dup"})
    peer.put(
        "mine", {**peer.get("mine", docs[1]["_id"]), "_attachments": {"a.bin": attachment("♥")}}
    )
    peer.bulk_docs(
        "mine",
        [{"_id": "d", "_rev": rev(1, f"d{i}"), "_deleted": i % 2 == 0} for i in range(7)],
        new_edits=False,
    )
    result = peer.replicate("mine", couch_server.url + theirs, batch_size=6)
    assert result["ok"] and result["docs_written"] == 27
    # Pulled twice: plain, and gzipped both ways (the server gzips answers of 1 KB and more).
    plain, packed = SQLiteStore(tmp_path / "plain.sqlite3"), SQLiteStore(tmp_path / "gz.sqlite3")
    try:
        server_plain = RemoteDatabase(couch_server.url, theirs)
        server_packed = RemoteDatabase(couch_server.url, theirs, gzip=True)
        assert replicate(Replication(server_plain, plain, batch_size=6)).docs_written == 27
        assert replicate(Replication(server_packed, packed, batch_size=6)).docs_written == 27
        assert server_packed.bytes_received < server_plain.bytes_received / 3
        expected = peer.dump("mine")
        assert dump(plain) == expected == dump(packed) == dump(server_plain)
        assert len(expected["d"]["leaves"]) == 7
        with pytest.raises(DocNotFound):
            plain.get(docs[0]["_id"])
    finally:
        plain.close()
        packed.close()
