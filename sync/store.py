"""The kiosk's embedded document store: CouchDB semantics on one SQLite file ("PouchDB in Python").

``SQLiteStore`` implements the ``Database`` protocol (sync/database.py) with the revision-tree
rules of sync/revtree.py, so the replicator treats it exactly like a remote CouchDB.

Durability: WAL journal with ``synchronous=FULL`` and one transaction per write call, so a write
that returned survives a kill -9 or a power cut. Threads: one connection guarded by a re-entrant
lock, so calls from several threads are serialised (the kiosk app is small); ``BEGIN IMMEDIATE``
also serialises writers in other processes opening the same file.

Tables: ``docs`` (id, serialised rev tree, winner, deleted, seq), ``revs`` (one row per revision
whose body was stored; body NULL after compaction), ``attachments`` (content-addressed blobs keyed
by CouchDB's ``md5-<base64>`` digest), ``rev_attachments`` (which revision has which attachment
under which name), ``local_docs`` (``_local/`` documents, revs ``0-N``) and ``store`` (uuid and the
integer update sequence).

Deliberate choices where CouchDB and PouchDB differ (REPLICATION_PROTOCOL.md §2, §5):

* ``revs_diff`` follows CouchDB: a revision in the tree is not missing even when compaction or
  an ancestor-only history left no body for it (PouchDB reports such revisions missing). Like
  pouchdb-server, and as the ``Database`` protocol documents, it answers ``missing`` only (no
  ``possible_ancestors``); ``changes`` pages carry no ``pending``.
* ``bulk_docs(new_edits=False)`` refuses the whole request (BadRequest, nothing written) when a
  document has neither ``_rev`` nor ``_revisions``, as pouchdb-server was probed to do.
* An attachment stub that names no attachment of the edited revision (or, when replicating, of
  its nearest stored ancestor) is still accepted if the store holds a blob with the stub's digest;
  otherwise it is a ``missing_stub`` error (CouchDB answers 412 for the request; ``put`` raises
  BadRequest, ``bulk_docs`` reports the document).
* Filters are Python functions registered in sync.filters under the design-doc filter's name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sync import revtree
from sync.database import ChangesPage, Doc, Seq
from sync.errors import BadRequest, CouchConflict, DocNotFound
from sync.filters import FilterFunction, get_filter
from sync.revtree import RevTree

__all__ = ["SQLiteStore", "attachment_digest"]

LOCAL_PREFIX = "_local/"
DESIGN_PREFIX = "_design/"
_CONFLICT = "Document update conflict."
_SCHEMA_VERSION = 1

# Special members CouchDB accepts in a document body; the second set is output-only and dropped.
_SPECIAL = frozenset({"_id", "_rev", "_deleted", "_attachments", "_revisions"})
_IGNORED = frozenset({"_conflicts", "_deleted_conflicts", "_revs_info", "_local_seq"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    uuid TEXT NOT NULL,
    update_seq INTEGER NOT NULL,
    schema_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    tree TEXT NOT NULL,
    winner TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    seq INTEGER NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS revs (
    doc_id TEXT NOT NULL,
    rev TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    leaf INTEGER NOT NULL,
    body TEXT,
    PRIMARY KEY (doc_id, rev)
);
CREATE INDEX IF NOT EXISTS revs_compactable ON revs (doc_id) WHERE leaf = 0 AND body IS NOT NULL;
CREATE TABLE IF NOT EXISTS attachments (
    digest TEXT PRIMARY KEY,
    length INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rev_attachments (
    doc_id TEXT NOT NULL,
    rev TEXT NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    digest TEXT NOT NULL,
    length INTEGER NOT NULL,
    revpos INTEGER NOT NULL,
    PRIMARY KEY (doc_id, rev, name)
);
CREATE INDEX IF NOT EXISTS rev_attachments_digest ON rev_attachments (digest);
CREATE TABLE IF NOT EXISTS local_docs (
    id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL,
    body TEXT NOT NULL
);
"""


def attachment_digest(data: bytes) -> str:
    """CouchDB's attachment digest: ``"md5-" + base64(md5(data))``."""
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class _MissingStub(Exception):
    """An attachment stub that refers to nothing the store holds."""


@dataclass
class _Incoming:
    """A document to write, validated and split into its parts."""

    id: str
    body: dict[str, Any]
    body_json: str
    deleted: bool
    rev: str | None
    revisions: revtree.Revisions | None
    attachments: dict[str, dict[str, Any]]
    local: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)


class SQLiteStore:
    """A CouchDB-compatible database in one SQLite file, implementing ``sync.database.Database``."""

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        *,
        revs_limit: int = revtree.DEFAULT_REVS_LIMIT,
        auto_compaction: bool = False,
    ) -> None:
        self.path = str(path)
        self.name = name if name is not None else Path(self.path).stem
        self.revs_limit = revs_limit
        """Revisions kept per branch (CouchDB's ``_revs_limit``); applies to later writes."""
        self.auto_compaction = auto_compaction
        """Drop a revision's body as soon as it stops being a leaf (PouchDB's option)."""
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT uuid, schema_version FROM store").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO store (id, uuid, update_seq, schema_version) VALUES (1, ?, 0, ?)",
                    (uuid.uuid4().hex, _SCHEMA_VERSION),
                )
            elif row[1] != _SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: store schema {row[1]}, expected {_SCHEMA_VERSION}"
                )
            self._uuid = conn.execute("SELECT uuid FROM store").fetchone()[0]

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, name={self.name!r})"

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the SQLite connection; the store cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed (and fsynced) on success, rolled back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so a multi-query answer sees one snapshot."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # --- the Database protocol: reads --------------------------------------------------------

    def identity(self) -> str:
        """This store's uuid, created with the file and kept across restarts."""
        return self._uuid

    def info(self) -> Doc:
        """``{"db_name", "doc_count", "update_seq", "instance_start_time"}`` (live documents)."""
        with self._read() as conn:
            live = conn.execute("SELECT COUNT(*) FROM docs WHERE deleted = 0").fetchone()[0]
            seq = self._update_seq(conn)
        return {
            "db_name": self.name,
            "doc_count": live,
            "update_seq": seq,
            "instance_start_time": "0",
        }

    def get(
        self,
        doc_id: str,
        *,
        rev: str | None = None,
        revs: bool = False,
        conflicts: bool = False,
        attachments: bool = False,
    ) -> Doc:
        """The winning revision (or ``rev``) of a document; a deleted winner is not found."""
        if doc_id.startswith(LOCAL_PREFIX):
            local = self.get_local(doc_id)
            if local is None:
                raise DocNotFound(f"{doc_id}: missing")
            return local
        if rev is not None:
            rev = _normal_rev(rev)
        with self._read() as conn:
            tree, winner, winner_deleted = self._doc_row(conn, doc_id)
            if rev is None:
                if winner_deleted:
                    raise DocNotFound(f"{doc_id}: deleted")
                rev = winner
            elif not revtree.contains(tree, rev):
                raise DocNotFound(f"{doc_id} {rev}: missing")
            doc = self._revision(conn, doc_id, rev, attachments="data" if attachments else "stub")
            if doc is None:
                raise DocNotFound(f"{doc_id} {rev}: missing (compacted)")
        if revs:
            doc["_revisions"] = revtree.history(tree, rev)
        if conflicts:
            found = revtree.conflicts(tree)
            if found:
                doc["_conflicts"] = found
        return doc

    def open_revs(
        self,
        doc_id: str,
        revs: Sequence[str] | Literal["all"],
        *,
        attachments: bool = False,
    ) -> list[Doc]:
        """Each requested revision (``"all"``: every leaf) with ``_revisions``, or ``missing``.

        ``"all"`` on a document that does not exist raises DocNotFound, as CouchDB answers 404."""
        if revs != "all":
            revs = [_normal_rev(rev) for rev in revs]
        with self._read() as conn:
            found = self._open_revs(conn, doc_id, revs, "data" if attachments else "stub", None)
        if revs == "all" and not found:
            raise DocNotFound(f"{doc_id}: missing")
        return found

    def changes(
        self,
        *,
        since: Seq = 0,
        limit: int | None = None,
        style: Literal["main_only", "all_docs"] = "main_only",
        filter: str | None = None,
        query_params: Mapping[str, str] | None = None,
        doc_ids: Sequence[str] | None = None,
        include_docs: bool = False,
    ) -> ChangesPage:
        """One page of changes after ``since``, each document once at its newest seq.

        ``style="all_docs"`` lists every leaf, winner first; a named filter is called on each
        listed leaf (an exception in it fails the call, as a throwing JavaScript filter does);
        ``last_seq`` moves past filtered-out documents so a checkpoint can advance."""
        if style not in ("main_only", "all_docs"):
            raise BadRequest(f"style must be main_only or all_docs, not {style!r}")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise BadRequest(f"limit must be a non-negative integer, not {limit!r}")
        params = dict(query_params or {})
        only_design = False
        filter_fn: FilterFunction | None = None
        if filter == "_doc_ids":
            if doc_ids is None:
                raise BadRequest("`doc_ids` filter parameter is not a list of doc ids.")
        elif filter == "_design":
            only_design = True
        elif filter in ("_selector", "_view"):
            raise BadRequest(f"filter {filter!r} is not supported by the embedded store")
        elif filter is not None:
            filter_fn = get_filter(filter)
        with self._read() as conn:
            start = self._parse_since(conn, since)
            results: list[Doc] = []
            last_seq = start
            if limit != 0:
                sql = "SELECT id, tree, winner, deleted, seq FROM docs WHERE seq > ?"
                args: list[Any] = [start]
                if doc_ids is not None:
                    sql += " AND id IN (SELECT value FROM json_each(?))"
                    args.append(_dumps(list(doc_ids)))
                if only_design:
                    sql += " AND id >= '_design/' AND id < '_design0'"
                sql += " ORDER BY seq"
                if limit is not None and filter_fn is None:
                    sql += " LIMIT ?"
                    args.append(limit)
                for doc_id, tree_json, winner, deleted, seq in conn.execute(sql, args).fetchall():
                    last_seq = seq
                    tree = RevTree.from_json(tree_json)
                    revs = revtree.leaves(tree) if style == "all_docs" else [winner]
                    if filter_fn is not None:
                        revs = self._filtered(conn, doc_id, tree, revs, filter_fn, params)
                        if not revs:
                            continue
                    row: Doc = {"seq": seq, "id": doc_id, "changes": [{"rev": r} for r in revs]}
                    if deleted:
                        row["deleted"] = True
                    if include_docs:
                        row["doc"] = self._revision(conn, doc_id, winner, attachments="stub")
                    results.append(row)
                    if limit is not None and len(results) >= limit:
                        break
            return {"results": results, "last_seq": last_seq}

    def count_changed(self, since: int, prefixes: Sequence[str]) -> int:
        """How many documents whose id starts with one of ``prefixes`` changed after ``since``
        (one SQL count: what the kiosk's "waiting to go up" shows on every page)."""
        if not prefixes:
            return 0
        ranges = " OR ".join("(id >= ? AND id < ?)" for _ in prefixes)
        args: list[Any] = [since]
        for prefix in prefixes:
            args += [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
        with self._read() as conn:
            row = conn.execute(f"SELECT count(*) FROM docs WHERE seq > ? AND ({ranges})", args)
            return int(row.fetchone()[0])

    def revs_diff(self, revs: Mapping[str, Sequence[str]]) -> dict[str, dict[str, list[str]]]:
        """The revisions this store lacks: ``{id: {"missing": [...]}}``, ids lacking none left out.

        A revision present in the tree counts as known even if compaction dropped its body
        (CouchDB's rule; PouchDB would report it missing)."""
        answer: dict[str, dict[str, list[str]]] = {}
        with self._read() as conn:
            for doc_id, wanted in revs.items():
                for rev in wanted:
                    revtree.parse_rev(rev)
                row = conn.execute("SELECT tree FROM docs WHERE id = ?", (doc_id,)).fetchone()
                tree = RevTree.from_json(row[0]) if row else RevTree()
                missing = list(dict.fromkeys(r for r in wanted if not revtree.contains(tree, r)))
                if not missing:
                    continue
                answer[doc_id] = {"missing": missing}
        return answer

    def bulk_get(
        self, docs: Sequence[Mapping[str, Any]], *, attachments: bool = False
    ) -> list[Doc]:
        """CouchDB's ``_bulk_get`` results (``revs=true``): one entry per request, in order.

        A request without ``rev`` returns every leaf; ``atts_since`` inlines only attachments
        newer than the newest listed ancestor, as CouchDB does."""
        results: list[Doc] = []
        with self._read() as conn:
            for request in docs:
                doc_id, rev = request.get("id"), request.get("rev")
                if not isinstance(doc_id, str) or not doc_id:
                    failure = _bulk_get_error(doc_id, rev, "bad_request", "document id missed")
                    results.append({"id": doc_id, "docs": [failure]})
                    continue
                try:
                    wanted: Sequence[str] | Literal["all"] = "all"
                    if rev is not None:
                        rev = _normal_rev(rev)
                        wanted = [rev]
                    since = request.get("atts_since")
                    since_keys = [revtree.parse_rev(r) for r in since] if since else None
                except BadRequest as exc:
                    failure = _bulk_get_error(doc_id, rev, "bad_request", str(exc))
                    results.append({"id": doc_id, "docs": [failure]})
                    continue
                mode = "data" if attachments else "stub"
                found = self._open_revs(conn, doc_id, wanted, mode, since_keys)
                items = [
                    item
                    if "ok" in item
                    else _bulk_get_error(doc_id, item["missing"], "not_found", "missing")
                    for item in found
                ]
                # a document with no leaf at all (rev not given): one error, as CouchDB answers
                results.append(
                    {
                        "id": doc_id,
                        "docs": items or [_bulk_get_error(doc_id, rev, "not_found", "missing")],
                    }
                )
        return results

    def get_local(self, local_id: str) -> Doc | None:
        """A ``_local/`` document (the prefix is optional here), or None."""
        local_id = _local_id(local_id)
        with self._lock:
            row = self._conn.execute(
                "SELECT rev, body FROM local_docs WHERE id = ?", (local_id,)
            ).fetchone()
        if row is None:
            return None
        return {"_id": local_id, "_rev": f"0-{row[0]}", **json.loads(row[1])}

    def get_attachment(self, doc_id: str, name: str, *, rev: str | None = None) -> bytes:
        """An attachment's bytes from the winning revision (or ``rev``). Raises DocNotFound."""
        if rev is not None:
            rev = _normal_rev(rev)
        with self._read() as conn:
            tree, winner, deleted = self._doc_row(conn, doc_id)
            if rev is None:
                if deleted:
                    raise DocNotFound(f"{doc_id}: deleted")
                rev = winner
            row = conn.execute(
                "SELECT a.data FROM rev_attachments r JOIN attachments a USING (digest) "
                "WHERE r.doc_id = ? AND r.rev = ? AND r.name = ?",
                (doc_id, rev, name),
            ).fetchone()
        if row is None:
            raise DocNotFound(f"{doc_id} {rev}: no attachment {name!r}")
        return bytes(row[0])

    # --- the Database protocol: writes -------------------------------------------------------

    def put(self, doc: Doc) -> str:
        """Write ``doc`` as a new edit of ``doc["_rev"]`` (none: new, or revive a deleted doc).

        Raises CouchConflict when ``_rev`` is not a leaf (or is missing on a live document),
        BadRequest for a malformed document or an attachment stub that matches nothing."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("_id"), str):
            raise BadRequest("put needs a document with a string _id")
        incoming = _parse(doc, new_edits=True)
        with self._write() as conn:
            if incoming.local:
                return self._put_local(conn, incoming.raw)
            try:
                return self._new_edit(conn, incoming)
            except _MissingStub as exc:
                raise BadRequest(f"missing_stub: {exc}") from None

    def bulk_docs(self, docs: Sequence[Doc], *, new_edits: bool = True) -> list[Doc]:
        """Write many documents in one transaction (see ``Database.bulk_docs``).

        A malformed document fails the whole call with BadRequest before anything is written;
        conflicts and missing stubs are reported per document."""
        parsed = [_parse(doc, new_edits=new_edits) for doc in docs]
        results: list[Doc] = []
        with self._write() as conn:
            for item in parsed:
                conn.execute("SAVEPOINT doc")
                try:
                    if item.local:
                        rev = self._put_local(conn, item.raw)
                    elif new_edits:
                        rev = self._new_edit(conn, item)
                    else:
                        rev = self._replicated_edit(conn, item)
                except (CouchConflict, _MissingStub) as exc:
                    conn.execute("ROLLBACK TO doc")
                    conn.execute("RELEASE doc")
                    error = "conflict" if isinstance(exc, CouchConflict) else "missing_stub"
                    failure: Doc = {"id": item.id}
                    if not new_edits and item.revisions is not None:
                        start, ids = item.revisions["start"], item.revisions["ids"]
                        failure["rev"] = revtree.format_rev(start, ids[0])
                    failure |= {"error": error, "reason": str(exc)}
                    results.append(failure)
                    continue
                conn.execute("RELEASE doc")
                if new_edits:
                    results.append({"ok": True, "id": item.id, "rev": rev})
        return results

    def put_local(self, doc: Doc) -> str:
        """Write a ``_local/`` document; a stale ``_rev`` raises CouchConflict. Returns ``0-N``."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("_id"), str):
            raise BadRequest("put_local needs a document with a string _id")
        with self._write() as conn:
            return self._put_local(conn, doc)

    def compact(self) -> None:
        """Drop the bodies and attachment references of non-leaf revisions (ids stay known)."""
        with self._write() as conn:
            conn.execute(
                "DELETE FROM rev_attachments WHERE (doc_id, rev) IN "
                "(SELECT doc_id, rev FROM revs WHERE leaf = 0 AND body IS NOT NULL)"
            )
            conn.execute("UPDATE revs SET body = NULL WHERE leaf = 0 AND body IS NOT NULL")
            conn.execute(
                "DELETE FROM attachments WHERE digest NOT IN (SELECT digest FROM rev_attachments)"
            )
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- internals: reading ------------------------------------------------------------------

    @staticmethod
    def _update_seq(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT update_seq FROM store").fetchone()[0])

    def _parse_since(self, conn: sqlite3.Connection, since: Seq) -> int:
        if since == "now":
            return self._update_seq(conn)
        if isinstance(since, bool):
            raise BadRequest(f"invalid since: {since!r}")
        if isinstance(since, int):
            value = since
        elif isinstance(since, str) and since.isdigit():
            value = int(since)
        else:
            raise BadRequest(f"invalid since: {since!r} (this store's seqs are integers)")
        if value < 0:
            raise BadRequest(f"invalid since: {since!r}")
        return value

    @staticmethod
    def _doc_row(conn: sqlite3.Connection, doc_id: str) -> tuple[RevTree, str, bool]:
        row = conn.execute(
            "SELECT tree, winner, deleted FROM docs WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            raise DocNotFound(f"{doc_id}: missing")
        return RevTree.from_json(row[0]), row[1], bool(row[2])

    @staticmethod
    def _revision(
        conn: sqlite3.Connection, doc_id: str, rev: str, *, attachments: str | int
    ) -> Doc | None:
        """One stored revision as a document, or None if its body is gone.

        ``attachments`` is ``"stub"``, ``"data"`` or an int: inline only those with a greater
        revpos (``atts_since``)."""
        row = conn.execute(
            "SELECT deleted, body FROM revs WHERE doc_id = ? AND rev = ?", (doc_id, rev)
        ).fetchone()
        if row is None or row[1] is None:
            return None
        doc: Doc = {"_id": doc_id, "_rev": rev, **json.loads(row[1])}
        if row[0]:
            doc["_deleted"] = True
        atts = conn.execute(
            "SELECT r.name, r.content_type, r.digest, r.length, r.revpos, "
            "CASE WHEN ? THEN a.data END "
            "FROM rev_attachments r LEFT JOIN attachments a USING (digest) "
            "WHERE r.doc_id = ? AND r.rev = ? ORDER BY r.name",
            (attachments != "stub", doc_id, rev),
        ).fetchall()
        if atts:
            out: dict[str, Any] = {}
            for name, content_type, digest, length, revpos, data in atts:
                inline = attachments == "data" or (
                    isinstance(attachments, int)
                    and not isinstance(attachments, bool)
                    and revpos > attachments
                )
                if inline and data is not None:
                    out[name] = {
                        "content_type": content_type,
                        "revpos": revpos,
                        "digest": digest,
                        "data": base64.b64encode(bytes(data)).decode("ascii"),
                    }
                else:
                    out[name] = {
                        "content_type": content_type,
                        "revpos": revpos,
                        "digest": digest,
                        "length": length,
                        "stub": True,
                    }
            doc["_attachments"] = out
        return doc

    def _open_revs(
        self,
        conn: sqlite3.Connection,
        doc_id: str,
        revs: Sequence[str] | Literal["all"],
        attachments: str,
        atts_since: list[tuple[int, str]] | None,
    ) -> list[Doc]:
        row = conn.execute("SELECT tree FROM docs WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            return [] if revs == "all" else [{"missing": r} for r in revs]
        tree = RevTree.from_json(row[0])
        wanted = revtree.leaves(tree) if revs == "all" else list(dict.fromkeys(revs))
        answer: list[Doc] = []
        for rev in wanted:
            if not revtree.contains(tree, rev):
                answer.append({"missing": rev})
                continue
            path = revtree.history(tree, rev)
            mode = attachments if atts_since is None else _ancestor_pos(path, atts_since)
            doc = self._revision(conn, doc_id, rev, attachments=mode)
            if doc is None:
                answer.append({"missing": rev})
            else:
                doc["_revisions"] = path
                answer.append({"ok": doc})
        return answer

    def _filtered(
        self,
        conn: sqlite3.Connection,
        doc_id: str,
        tree: RevTree,
        revs: list[str],
        filter_fn: FilterFunction,
        params: Mapping[str, str],
    ) -> list[str]:
        """The revisions among ``revs`` that pass a filter (CouchDB filters each leaf)."""
        passed = []
        for rev in revs:
            doc = self._revision(conn, doc_id, rev, attachments="stub")
            if doc is not None and filter_fn(doc, params):
                passed.append(rev)
        return passed

    # --- internals: writing ------------------------------------------------------------------

    def _new_edit(self, conn: sqlite3.Connection, incoming: _Incoming) -> str:
        """An interactive edit: a child of ``_rev`` (or of a deleted winner, or a new root)."""
        row = conn.execute(
            "SELECT tree, winner, deleted FROM docs WHERE id = ?", (incoming.id,)
        ).fetchone()
        tree = RevTree.from_json(row[0]) if row else RevTree()
        prev = incoming.rev
        if prev is None and incoming.revisions is not None:
            prev = revtree.format_rev(incoming.revisions["start"], incoming.revisions["ids"][0])
        if prev is not None:
            if row is None or not revtree.is_leaf(tree, prev):
                raise CouchConflict(_CONFLICT)
        elif row is not None:
            if not row[2]:
                raise CouchConflict(_CONFLICT)
            prev = row[1]  # a deleted document: extend its tombstone branch, as CouchDB does
        prev_pos, prev_hash = revtree.parse_rev(prev) if prev else (0, None)
        new_pos = prev_pos + 1
        ancestors = [prev] if prev else []
        atts = self._resolve_attachments(conn, incoming, new_pos, ancestors, replicated=False)
        new_hash = revtree.new_rev_hash(
            incoming.body, deleted=incoming.deleted, prev_rev=prev, attachments=atts
        )
        new_rev = revtree.format_rev(new_pos, new_hash)
        if revtree.contains(tree, new_rev):
            return new_rev
        ids = [new_hash] if prev_hash is None else [new_hash, prev_hash]
        merged = revtree.merge(tree, {"start": new_pos, "ids": ids}, deleted=incoming.deleted)
        self._store_revision(conn, incoming, new_rev, atts)
        self._save_tree(conn, incoming.id, tree, merged)
        return new_rev

    def _replicated_edit(self, conn: sqlite3.Connection, incoming: _Incoming) -> str:
        """A replicated revision (``new_edits=false``): merged with its history as given."""
        revisions = incoming.revisions
        if revisions is None:
            assert incoming.rev is not None
            pos, rev_hash = revtree.parse_rev(incoming.rev)
            revisions = {"start": pos, "ids": [rev_hash]}
            incoming.revisions = revisions
        start, ids = revisions["start"], revisions["ids"]
        rev = revtree.format_rev(start, ids[0])
        row = conn.execute("SELECT tree FROM docs WHERE id = ?", (incoming.id,)).fetchone()
        tree = RevTree.from_json(row[0]) if row else RevTree()
        if revtree.contains(tree, rev):
            return rev  # already known: a no-op, no new seq
        ancestors = [revtree.format_rev(start - i, h) for i, h in enumerate(ids) if i > 0]
        atts = self._resolve_attachments(conn, incoming, start, ancestors, replicated=True)
        merged = revtree.merge(tree, revisions, deleted=incoming.deleted)
        self._store_revision(conn, incoming, rev, atts)
        self._save_tree(conn, incoming.id, tree, merged)
        return rev

    def _resolve_attachments(
        self,
        conn: sqlite3.Connection,
        incoming: _Incoming,
        new_pos: int,
        ancestors: list[str],
        *,
        replicated: bool,
    ) -> dict[str, dict[str, Any]]:
        """Attachment metadata for the new revision; stubs resolved against the ancestors."""
        resolved: dict[str, dict[str, Any]] = {}
        for name, att in incoming.attachments.items():
            if "data" in att:
                # New data gets the new generation; a replicated revision keeps its revpos.
                revpos = att.get("revpos")
                if not replicated or not isinstance(revpos, int) or not 0 < revpos <= new_pos:
                    revpos = new_pos
                resolved[name] = {**att, "revpos": revpos}
                continue
            found = None
            for ancestor in ancestors:
                found = conn.execute(
                    "SELECT content_type, digest, length, revpos FROM rev_attachments "
                    "WHERE doc_id = ? AND rev = ? AND name = ?",
                    (incoming.id, ancestor, name),
                ).fetchone()
                if found is not None:
                    break
            if found is None and isinstance(att.get("digest"), str):
                blob = conn.execute(
                    "SELECT length FROM attachments WHERE digest = ?", (att["digest"],)
                ).fetchone()
                if blob is not None:
                    revpos = att.get("revpos")
                    found = (
                        att.get("content_type") or "application/octet-stream",
                        att["digest"],
                        blob[0],
                        revpos if isinstance(revpos, int) and 0 < revpos <= new_pos else new_pos,
                    )
            if found is None:
                raise _MissingStub(f"Invalid attachment stub in {incoming.id} for {name}")
            content_type, digest, length, revpos = found
            resolved[name] = {
                "content_type": content_type,
                "digest": digest,
                "length": length,
                "revpos": revpos,
            }
        return resolved

    @staticmethod
    def _store_revision(
        conn: sqlite3.Connection, incoming: _Incoming, rev: str, atts: dict[str, dict[str, Any]]
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO revs (doc_id, rev, deleted, leaf, body) VALUES (?, ?, ?, 1, ?)",
            (incoming.id, rev, int(incoming.deleted), incoming.body_json),
        )
        for name, att in atts.items():
            if "data" in att:
                conn.execute(
                    "INSERT OR IGNORE INTO attachments (digest, length, data) VALUES (?, ?, ?)",
                    (att["digest"], att["length"], att["data"]),
                )
            conn.execute(
                "INSERT OR REPLACE INTO rev_attachments "
                "(doc_id, rev, name, content_type, digest, length, revpos) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    incoming.id,
                    rev,
                    name,
                    att["content_type"],
                    att["digest"],
                    att["length"],
                    att["revpos"],
                ),
            )

    def _save_tree(
        self, conn: sqlite3.Connection, doc_id: str, old: RevTree, merged: RevTree
    ) -> None:
        """Stem, record the tree with a new seq, and keep ``revs`` in step with it."""
        tree = revtree.stem(merged, self.revs_limit)
        if len(tree) < len(merged):
            kept = _dumps(list(tree))
            conn.execute(
                "DELETE FROM rev_attachments WHERE doc_id = ? "
                "AND rev NOT IN (SELECT value FROM json_each(?))",
                (doc_id, kept),
            )
            conn.execute(
                "DELETE FROM revs WHERE doc_id = ? AND rev NOT IN (SELECT value FROM json_each(?))",
                (doc_id, kept),
            )
        leaves = revtree.leaves(tree)
        conn.execute(
            "UPDATE revs SET leaf = 0 WHERE doc_id = ? AND leaf = 1 "
            "AND rev NOT IN (SELECT value FROM json_each(?))",
            (doc_id, _dumps(leaves)),
        )
        if self.auto_compaction:
            conn.execute(
                "DELETE FROM rev_attachments WHERE doc_id = ? AND rev IN "
                "(SELECT rev FROM revs WHERE doc_id = ? AND leaf = 0 AND body IS NOT NULL)",
                (doc_id, doc_id),
            )
            conn.execute(
                "UPDATE revs SET body = NULL WHERE doc_id = ? AND leaf = 0 AND body IS NOT NULL",
                (doc_id,),
            )
        seq = conn.execute(
            "UPDATE store SET update_seq = update_seq + 1 RETURNING update_seq"
        ).fetchone()[0]
        winner = leaves[0]
        conn.execute(
            "INSERT INTO docs (id, tree, winner, deleted, seq) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET tree = excluded.tree, winner = excluded.winner, "
            "deleted = excluded.deleted, seq = excluded.seq",
            (doc_id, tree.to_json(), winner, int(revtree.is_deleted(tree, winner)), seq),
        )

    @staticmethod
    def _put_local(conn: sqlite3.Connection, doc: Mapping[str, Any]) -> str:
        local_id = doc["_id"]
        if not local_id.startswith(LOCAL_PREFIX) or local_id == LOCAL_PREFIX:
            raise BadRequest(f"a local document id starts with {LOCAL_PREFIX!r}: {local_id!r}")
        row = conn.execute("SELECT rev FROM local_docs WHERE id = ?", (local_id,)).fetchone()
        current = row[0] if row else 0
        given = doc.get("_rev")
        if (0 if given is None else _parse_local_rev(given)) != current:
            raise CouchConflict(_CONFLICT)
        if doc.get("_deleted") is True:
            conn.execute("DELETE FROM local_docs WHERE id = ?", (local_id,))
            return "0-0"
        body = {k: v for k, v in doc.items() if not k.startswith("_")}
        try:
            body_json = _dumps(body)
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"{local_id}: not a JSON document ({exc})") from None
        conn.execute(
            "INSERT INTO local_docs (id, rev, body) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET rev = excluded.rev, body = excluded.body",
            (local_id, current + 1, body_json),
        )
        return f"0-{current + 1}"


# --- parsing and small helpers ------------------------------------------------------------


def _bulk_get_error(doc_id: Any, rev: Any, error: str, reason: str) -> Doc:
    return {"error": {"id": doc_id, "rev": rev, "error": error, "reason": reason}}


def _normal_rev(rev: Any) -> str:
    """A caller's rev, validated (BadRequest) and with a 32-char hex hash lowercased."""
    return revtree.format_rev(*revtree.parse_rev(rev))


def _local_id(local_id: str) -> str:
    return local_id if local_id.startswith(LOCAL_PREFIX) else LOCAL_PREFIX + local_id


def _parse_local_rev(rev: Any) -> int:
    if isinstance(rev, str):
        pos, _, number = rev.partition("-")
        if pos == "0" and number.isdigit():
            return int(number)
    raise BadRequest(f"Invalid rev format for a local document: {rev!r}")


def _ancestor_pos(path: revtree.Revisions, atts_since: list[tuple[int, str]]) -> int:
    """The generation of the newest revision on ``path`` listed in ``atts_since`` (0: none)."""
    known = set(atts_since)
    for i, rev_hash in enumerate(path["ids"]):
        if (path["start"] - i, rev_hash) in known:
            return path["start"] - i
    return 0


def _check_doc_id(doc_id: Any) -> None:
    if not isinstance(doc_id, str) or not doc_id:
        raise BadRequest(f"Document id must be a non-empty string, not {doc_id!r}")
    if doc_id.startswith("_") and not (
        doc_id.startswith(DESIGN_PREFIX) and len(doc_id) > len(DESIGN_PREFIX)
    ):
        raise BadRequest(f"Only reserved document ids may start with underscore: {doc_id!r}")


def _parse_attachments(doc_id: str, value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"{doc_id}: _attachments must be an object")
    parsed: dict[str, dict[str, Any]] = {}
    for name, att in value.items():
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise BadRequest(f"{doc_id}: invalid attachment name {name!r}")
        if not isinstance(att, Mapping):
            raise BadRequest(f"{doc_id}: attachment {name!r} must be an object")
        if att.get("stub") is True:
            parsed[name] = {
                "stub": True,
                "digest": att.get("digest"),
                "revpos": att.get("revpos"),
                "content_type": att.get("content_type"),
            }
            continue
        data = att.get("data")
        if not isinstance(data, str):
            raise BadRequest(f"{doc_id}: attachment {name!r} needs base64 data or stub: true")
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except ValueError:
            raise BadRequest(f"{doc_id}: attachment {name!r} data is not base64") from None
        content_type = att.get("content_type") or "application/octet-stream"
        if not isinstance(content_type, str):
            raise BadRequest(f"{doc_id}: attachment {name!r} content_type must be a string")
        parsed[name] = {
            "content_type": content_type,
            "data": raw,
            "digest": attachment_digest(raw),
            "length": len(raw),
            "revpos": att.get("revpos"),
        }
    return parsed


def _parse(doc: Any, *, new_edits: bool) -> _Incoming:
    """Validate one incoming document (BadRequest) and split it into its parts."""
    if not isinstance(doc, Mapping):
        raise BadRequest("Document must be a JSON object")
    doc_id = doc.get("_id")
    if doc_id is None and new_edits:
        doc_id = uuid.uuid4().hex
    if isinstance(doc_id, str) and doc_id.startswith(LOCAL_PREFIX):
        return _Incoming(doc_id, {}, "{}", False, None, None, {}, local=True, raw=doc)
    _check_doc_id(doc_id)
    assert isinstance(doc_id, str)  # _check_doc_id refuses anything else
    for key in doc:
        if not isinstance(key, str):
            raise BadRequest(f"{doc_id}: member names must be strings")
        if key.startswith("_") and key not in _SPECIAL and key not in _IGNORED:
            raise BadRequest(f"{doc_id}: Bad special document member: {key}")
    rev = doc.get("_rev")
    if rev is not None:
        rev = _normal_rev(rev)
    revisions = doc.get("_revisions")
    if revisions is not None:
        revisions = revtree.parse_revisions(revisions)
    elif rev is None and not new_edits:
        # probed on pouchdb-server: the whole request is refused ("Invalid rev format")
        raise BadRequest(f"{doc_id}: Invalid rev format: a replicated document needs _rev")
    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    try:
        body_json = _dumps(body)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"{doc_id}: not a JSON document ({exc})") from None
    return _Incoming(
        id=doc_id,
        body=json.loads(body_json),
        body_json=body_json,
        deleted=doc.get("_deleted") is True,
        rev=rev,
        revisions=revisions,
        attachments=_parse_attachments(doc_id, doc.get("_attachments")),
    )
