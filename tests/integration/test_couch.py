"""sync.couch and sync.devserver against a real CouchDB-compatible server."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import couchdb
import pytest
from couchdb import http as couch_http

from sync.couch import (
    connect,
    couch_errors,
    ensure_database,
    get_attachment,
    get_document,
    put_attachment,
    save_document,
    save_documents,
)
from sync.devserver import PouchServer, find_pouchdb_server
from sync.errors import (
    BulkSaveFailed,
    CouchConflict,
    CouchRejected,
    CouchUnavailable,
)

FORBID_FIELD = (
    "function (newDoc, oldDoc, userCtx, secObj) {"
    " if (newDoc.forbidden !== undefined) {"
    " throw({forbidden: 'the field forbidden is not allowed'}); } }"
)


def _generation(rev: str) -> int:
    """Return the generation number of a revision id."""
    return int(rev.split("-", 1)[0])


# --- databases and documents --------------------------------------------------------------


def test_ensure_database_is_idempotent(couch: couchdb.Server, couch_db: couchdb.Database) -> None:
    save_document(couch_db, {"_id": "unit:1"})  # couch_db was made by ensure_database
    again = ensure_database(couch, couch_db.name)
    assert again.name == couch_db.name
    assert get_document(again, "unit:1") is not None  # the same database, not a new one
    assert ensure_database(couch, couch_db.name).name == couch_db.name


def test_get_document_of_missing_id_is_none(couch_db: couchdb.Database) -> None:
    assert get_document(couch_db, "case:nope") is None


def test_save_document_creates_then_replaces(couch_db: couchdb.Database) -> None:
    doc = {"_id": "unit:1", "type": "unit", "name": "甲村", "old": True}
    rev1 = save_document(couch_db, doc)
    assert _generation(rev1) == 1
    assert "_rev" not in doc  # the caller's dict is left alone

    rev2 = save_document(couch_db, {"_id": "unit:1", "type": "unit", "name": "乙村"})
    assert _generation(rev2) == 2
    stored = get_document(couch_db, "unit:1")
    assert stored == {"_id": "unit:1", "_rev": rev2, "type": "unit", "name": "乙村"}

    # a stale _rev in the new content is ignored: the current one is used
    rev3 = save_document(couch_db, {"_id": "unit:1", "_rev": rev1, "type": "unit"})
    assert _generation(rev3) == 3


def test_save_document_keeps_attachments(couch_db: couchdb.Database) -> None:
    save_document(couch_db, {"_id": "catalogue_item:1", "type": "catalogue_item"})
    put_attachment(couch_db, "catalogue_item:1", "form.pdf", b"%PDF-1.4", "application/pdf")
    save_document(couch_db, {"_id": "catalogue_item:1", "type": "catalogue_item", "v": 2})
    assert get_attachment(couch_db, "catalogue_item:1", "form.pdf") == b"%PDF-1.4"


def test_save_documents_in_bulk(couch_db: couchdb.Database) -> None:
    docs = [{"_id": f"case:{n}", "type": "case", "n": n} for n in range(5)]
    saved = save_documents(couch_db, docs)
    assert [doc_id for doc_id, _ in saved] == [doc["_id"] for doc in docs]
    assert all(_generation(rev) == 1 for _, rev in saved)
    assert get_document(couch_db, "case:3")["n"] == 3
    assert save_documents(couch_db, []) == []


def test_save_documents_lists_rejected_and_conflicting(couch_db: couchdb.Database) -> None:
    save_document(couch_db, {"_id": "_design/rules", "validate_doc_update": FORBID_FIELD})
    stale = save_document(couch_db, {"_id": "case:old", "type": "case"})
    save_document(couch_db, {"_id": "case:old", "type": "case", "v": 2})

    with pytest.raises(BulkSaveFailed) as caught:
        save_documents(
            couch_db,
            [
                {"_id": "case:good", "type": "case"},
                {"_id": "case:bad", "type": "case", "forbidden": 1},
                {"_id": "case:old", "_rev": stale, "type": "case", "v": 3},
            ],
        )
    failures = {f.id: f for f in caught.value.failures}
    assert set(failures) == {"case:bad", "case:old"}
    assert failures["case:bad"].error == "forbidden"
    assert "not allowed" in failures["case:bad"].reason
    assert failures["case:old"].error == "conflict"
    assert [doc_id for doc_id, _ in caught.value.saved] == ["case:good"]
    assert get_document(couch_db, "case:good") is not None
    assert get_document(couch_db, "case:bad") is None


def test_validation_refusal_of_one_document_is_rejected(couch_db: couchdb.Database) -> None:
    save_document(couch_db, {"_id": "_design/rules", "validate_doc_update": FORBID_FIELD})
    with pytest.raises(CouchRejected) as caught:
        save_document(couch_db, {"_id": "case:bad", "forbidden": True})
    assert caught.value.status == 403
    assert caught.value.error == "forbidden"
    assert "not allowed" in caught.value.reason


def test_conflict_is_mapped(couch_db: couchdb.Database) -> None:
    stale = save_document(couch_db, {"_id": "case:1"})
    save_document(couch_db, {"_id": "case:1", "v": 2})
    with pytest.raises(CouchConflict), couch_errors():
        couch_db.save({"_id": "case:1", "_rev": stale, "v": 3})


def test_attachment_round_trip(couch_db: couchdb.Database) -> None:
    rev1 = save_document(couch_db, {"_id": "catalogue_item:2", "type": "catalogue_item"})
    content = "材料模板".encode() + bytes(range(256)) * 40  # binary, larger than one chunk
    rev2 = put_attachment(couch_db, "catalogue_item:2", "template.bin", content, "application/x-t")
    assert _generation(rev2) == _generation(rev1) + 1
    assert get_attachment(couch_db, "catalogue_item:2", "template.bin") == content
    stub = get_document(couch_db, "catalogue_item:2")["_attachments"]["template.bin"]
    assert stub["content_type"] == "application/x-t"
    assert stub["length"] == len(content)

    put_attachment(couch_db, "catalogue_item:2", "template.bin", b"v2", "text/plain")
    assert get_attachment(couch_db, "catalogue_item:2", "template.bin") == b"v2"
    assert get_attachment(couch_db, "catalogue_item:2", "other.bin") is None
    assert get_attachment(couch_db, "catalogue_item:none", "template.bin") is None
    with pytest.raises(couch_http.ResourceNotFound):
        put_attachment(couch_db, "catalogue_item:none", "x.txt", b"x", "text/plain")


# --- connection failures ------------------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port held bound but not listening, so connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_timeout_is_honoured(silent_port: int) -> None:
    server = connect(f"http://admin:pw@127.0.0.1:{silent_port}/", timeout=1.0)
    began = time.monotonic()
    with pytest.raises(CouchUnavailable):
        ensure_database(server, "anything")
    assert time.monotonic() - began < 2.0


def test_connection_refused_is_unavailable(closed_port: int) -> None:
    server = connect(f"http://127.0.0.1:{closed_port}/", timeout=2.0)
    with pytest.raises(CouchUnavailable):
        ensure_database(server, "anything")
    with pytest.raises(CouchUnavailable):
        get_document(_database(server, "anything"), "case:1")


# --- rejections ---------------------------------------------------------------------------


def _database(server: couchdb.Server, name: str) -> couchdb.Database:
    """Return a handle on database ``name`` without a request (server[name] sends a HEAD)."""
    return couchdb.Database(server.resource(name), name)


def _as_user(couch: couchdb.Server, name: str, password: str) -> couchdb.Server:
    """Return a connection to the same server with other credentials."""
    host = couch.resource.url.split("://", 1)[1]
    return connect(f"http://{name}:{password}@{host}")


SECURITY = {
    "admins": {"names": [], "roles": []},
    "members": {"names": [], "roles": ["staff"]},
}


def test_wrong_password_is_rejected(couch: couchdb.Server, couch_db: couchdb.Database) -> None:
    save_document(couch_db, {"_id": "unit:1"})
    couch_db.security = SECURITY
    wrong = _as_user(couch, "admin", "wrong-password")
    with pytest.raises(CouchRejected) as caught:
        get_document(_database(wrong, couch_db.name), "unit:1")
    assert caught.value.status == 401
    assert caught.value.reason  # the server's own words, e.g. "Name or password is incorrect."
    with pytest.raises(CouchRejected):
        ensure_database(wrong, couch_db.name)  # HEAD of an existing database: no crash


@pytest.fixture
def plain_user(couch: couchdb.Server) -> Iterator[tuple[str, str]]:
    """A CouchDB user without roles, removed afterwards."""
    users = ensure_database(couch, "_users")
    name = f"u{uuid.uuid4().hex[:10]}"
    password = "pw-" + uuid.uuid4().hex
    doc_id = f"org.couchdb.user:{name}"
    save_document(
        users, {"_id": doc_id, "name": name, "password": password, "roles": [], "type": "user"}
    )
    yield name, password
    users.delete(users[doc_id])


def test_non_member_is_rejected(
    couch: couchdb.Server, couch_db: couchdb.Database, plain_user: tuple[str, str]
) -> None:
    save_document(couch_db, {"_id": "unit:1"})
    couch_db.security = SECURITY
    outsider = _database(_as_user(couch, *plain_user), couch_db.name)
    with pytest.raises(CouchRejected) as caught:  # CouchDB says 403, pouchdb-server 401
        get_document(outsider, "unit:1")
    assert caught.value.status in (401, 403)
    with pytest.raises(CouchRejected):
        save_document(outsider, {"_id": "unit:2"})
    assert get_document(couch_db, "unit:2") is None


# --- the pouchdb-server stand-in ----------------------------------------------------------


def test_find_pouchdb_server_explains_missing_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="README"):
        find_pouchdb_server(tmp_path)


def test_check_alive_raises_once_the_process_died() -> None:
    with PouchServer() as pouch:
        pouch.check_alive()
        assert pouch.alive()
        assert pouch.process is not None
        pouch.process.kill()
        pouch.process.wait(timeout=5)
        assert not pouch.alive()
        with pytest.raises(RuntimeError, match="died"):
            pouch.check_alive()
    with pytest.raises(RuntimeError, match="not running"):
        pouch.check_alive()


def test_persistent_server_keeps_data_and_admin(tmp_path: Path) -> None:
    data_dir = tmp_path / "var" / "couchdb" / "data"
    with PouchServer(data_dir, password="first-password") as pouch:
        db = ensure_database(connect(pouch.url), "directory")
        save_document(db, {"_id": "unit:1", "name": "甲村"})
    assert (data_dir.parent / "config.json").exists()  # written in the working dir, not cwd
    assert not Path("config.json").exists()

    with PouchServer(data_dir, password="first-password") as pouch:
        db = ensure_database(connect(pouch.url), "directory")
        assert get_document(db, "unit:1")["name"] == "甲村"

    with pytest.raises(RuntimeError, match="admin"):
        PouchServer(data_dir, password="another-password").start()
