"""The ``Database`` protocol over HTTP: CouchDB 3, or pouchdb-server 4.2 in development.

A thin translation onto the CouchDB HTTP API through couchdb-python's ``couchdb.http``
session (connection pool, socket timeouts, credentials in the URL). Answers are normalised to
CouchDB 3's shapes, so the replicator sees the same thing from every backend.

Where pouchdb-server 4.2 and CouchDB 3 differ, and what this adapter does about it
(``probed`` = seen on pouchdb-server; CouchDB from its docs and source):

* ``GET /{db}``: pouchdb adds ``adapter``, ``backend_adapter``, ``auto_compaction`` and an
  ``instance_start_time`` in milliseconds; CouchDB adds sizes, ``purge_seq``, ``props`` and
  sends ``"0"``. ``info()`` returns only ``db_name``, ``doc_count``, ``update_seq`` and
  ``instance_start_time`` (a string).
* ``GET /``: both send a ``uuid``; ``identity()`` is ``couchdb:{uuid}/{name}``.
* ``_bulk_get``: pouchdb-server answers a missing revision as ``{"missing": rev}`` (CouchDB:
  ``{"error": {"id", "rev", "error": "not_found", "reason": "missing"}}``), groups the answers
  by id instead of one result per request, and when one revision of an id is malformed it
  answers ``{}`` for every revision of that id (probed). Results are matched back to the
  requests by (id, rev) and returned one per request, in request order, in CouchDB's shape;
  a request with no answer becomes a ``not_found``/``missing`` error item.
* ``_bulk_get`` missing or failing (non-2xx other than 401/403/413, e.g. CouchDB < 2.3): the
  documented fallback ``GET /{db}/{id}?revs=true&open_revs=[...]`` with
  ``Accept: application/json``; once that worked, ``use_bulk_get`` is set to False for good.
* ``open_revs=[...]``: CouchDB answers the found revisions first, then the missing ones;
  pouchdb-server in the order asked. Answers are put in the order asked, each rev once.
* ``latest=true`` is never sent: pouchdb-server crashes on an unknown revision with it.
* Boolean query options are only ever sent as ``true``: pouchdb-server's ``_bulk_get`` copies
  query strings into its options unparsed, so ``attachments=false`` would read as true.
* ``_revs_diff``: CouchDB may add ``possible_ancestors``, pouchdb never does; the answer is
  reduced to ``{id: {"missing": [...]}}``. pouchdb lists a missing revision asked twice twice:
  duplicates are dropped before sending. An ancestor known only from a replicated
  ``_revisions`` list (no body) is missing for pouchdb and known for CouchDB: left as is.
* Attachment stubs: pouchdb-server 412s (``missing_stub``) a stub whose digest differs from
  the stored attachment; CouchDB matches stubs by name and revpos. Both 412 a stub naming
  nothing: BadRequest for the whole request. Replicate attachments inline.
* ``_bulk_docs`` with ``new_edits=false``: CouchDB 3 error items carry ``rev``, pouchdb's do
  not (probed: ``{"id", "error", "reason"}``); the ``rev`` of the document sent is filled in.
  CouchDB 1.x also listed successes; only errors are returned. A document with neither
  ``_rev`` nor ``_revisions`` is refused here with BadRequest before anything is sent
  (pouchdb-server 400s the whole request with "Invalid rev format").
* Conflict reasons differ in wording ("Document update conflict" vs "...conflict."); error
  names (``conflict``, ``forbidden``, ``unauthorized``) are the same and are what to test.
* ``_changes``: CouchDB >= 2 adds ``pending``; pages are reduced to ``results`` and
  ``last_seq``, rows to ``seq``, ``id``, ``changes``, ``deleted`` (only when true) and ``doc``.
  The order of the leaves in ``changes`` (style=all_docs) is not specified: pouchdb sorts them
  by generation, CouchDB puts the winner first.
* ``_changes?filter=ddoc/name`` naming a missing design document or filter function, and
  ``filter=_selector`` as a POST, or ``filter=_view``, crash pouchdb-server (probed). Filter
  names starting with ``_`` or without a slash are refused with BadRequest (CouchDB's 400),
  and a design filter is looked up in its design document before its first use by this
  instance: missing is DocNotFound, as on CouchDB. A filter source starting with a newline
  also crashes pouchdb-server: write them stripped.
* ``_changes?filter=_doc_ids`` with an empty list: pouchdb answers ``last_seq: 0`` whatever the
  ``since``; an empty ``doc_ids`` is answered here without a request, ``last_seq`` = ``since``.
* ``limit=0``: pouchdb returns one row; answered here without a request: no rows,
  ``last_seq`` = ``since``. A negative limit or unknown style is BadRequest (CouchDB's 400).
* ``query_params`` share the URL with ``_changes``' own options: a clashing name (``since``,
  ``limit``…) is BadRequest; without a filter they are ignored.
* Malformed revision ids (not ``N-hash``): CouchDB answers 400; pouchdb-server says 404 to
  ``GET ?rev=``, lists them as missing in ``_revs_diff`` and, in ``_bulk_get``, fails every
  revision of that id with ``{}``. They are refused here before sending: BadRequest from
  ``get``, ``open_revs``, ``revs_diff`` and ``get_attachment``; a ``bad_request`` error item
  from ``bulk_get`` (not sent, so the other revisions of the id still arrive).
* An invalid document body (``_foo`` member): CouchDB 400 ``doc_validation``, pouchdb-server
  500; both are BadRequest (sync.couch.couch_errors), for ``put`` and all of ``_bulk_docs``.
* ``deleted_conflicts=true`` is ignored by pouchdb-server (probed), so ``get`` does not offer
  it.
* ``max_document_size``: CouchDB 8 MB, pouchdb 4 GiB; both answer 413 → RequestTooLarge. A
  server may also close the connection on a large body before answering: CouchUnavailable.
* Request bodies may be gzipped (``gzip=True``): ``Content-Encoding: gzip`` on ``_bulk_docs``,
  ``_revs_diff``, ``_bulk_get`` and ``_changes`` (``doc_ids``) POSTs of 512 B or more. CouchDB
  inflates request bodies, pouchdb-server's body-parser too (verified by the contract tests
  and tests/integration/test_pouchdb_peer.py).
* With ``gzip=True`` the read-only bulk calls (``_changes``, ``_bulk_get``, ``open_revs``,
  ``_revs_diff``) also send ``Accept-Encoding: gzip``, as PouchDB does: pouchdb-server
  (express ``compression``) gzips answers of 1 KB and more, a pull then receives about a
  tenth of the bytes (benchmarks/README.md). CouchDB 3 itself answers plain JSON (a
  compressing reverse proxy in front of it would gzip). couchdb-python cannot read a gzipped
  *error* answer; such a read is asked again once without ``Accept-Encoding``.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlencode

import couchdb
from couchdb import http as couch_http

from sync.couch import connect, couch_errors
from sync.database import ChangesPage, Doc, Seq
from sync.errors import BadRequest, CouchRejected, DocNotFound, RequestTooLarge

__all__ = ["GZIP_MIN_BYTES", "RemoteDatabase"]

GZIP_MIN_BYTES = 512
"""Bodies smaller than this are sent uncompressed even with ``gzip=True`` (gzip adds ~20 B)."""

# Query options of _changes that query_params of a filter must not override.
_CHANGES_OPTIONS = frozenset(
    {"feed", "since", "limit", "style", "filter", "include_docs", "doc_ids", "descending",
     "heartbeat", "timeout", "conflicts", "attachments", "att_encoding_info", "seq_interval",
     "view", "selector"}
)  # fmt: skip

_MISSING_ITEM = {"error": "not_found", "reason": "missing"}


_REV = re.compile(r"[0-9]+-[^\s]+")


def _check_rev(rev: str) -> None:
    """Refuse a malformed revision id with BadRequest, as CouchDB does (pouchdb-server answers
    404 or lists it as missing instead, and poisons a whole ``_bulk_get`` id with it)."""
    if not isinstance(rev, str) or not _REV.fullmatch(rev):
        raise BadRequest(f"Invalid rev format: {rev!r}")


def _doc_path(doc_id: str) -> list[str]:
    """URL path segments of a document: ``_design/`` and ``_local/`` keep their slash."""
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return [prefix[:-1], doc_id[len(prefix) :]]
    return [doc_id]


def _error_item(doc_id: str, rev: str, error: str = "", reason: str = "") -> Doc:
    """CouchDB's ``_bulk_get`` error item."""
    return {
        "error": {
            "id": doc_id,
            "rev": rev,
            "error": error or _MISSING_ITEM["error"],
            "reason": reason or _MISSING_ITEM["reason"],
        }
    }


def _match(doc_id: str, rev: str, answers: Sequence[Mapping[str, Any]]) -> Doc:
    """Pick the answer for (doc_id, rev) among a server's answers for that id, in CouchDB's
    ``_bulk_get`` item shape; no answer names the revision: an error item."""
    unattributed: Mapping[str, Any] | None = None
    for item in answers:
        if "ok" in item:
            if item["ok"].get("_rev") == rev:
                return {"ok": item["ok"]}
        elif "missing" in item:
            if item["missing"] == rev:
                return _error_item(doc_id, rev)
        elif isinstance(item.get("error"), Mapping):  # CouchDB's form
            if item["error"].get("rev") in (rev, None):
                return _error_item(
                    doc_id, rev, item["error"].get("error", ""), item["error"].get("reason", "")
                )
        else:  # pouchdb-server's "{}" or {"error": name, "reason": message} for the whole id
            unattributed = unattributed or item
    if unattributed is not None:
        return _error_item(
            doc_id, rev, str(unattributed.get("error") or ""), str(unattributed.get("reason") or "")
        )
    return _error_item(doc_id, rev)


def _change_row(row: Mapping[str, Any]) -> Doc:
    """A ``_changes`` row reduced to the protocol's keys."""
    out: Doc = {"seq": row["seq"], "id": row["id"], "changes": list(row["changes"])}
    if row.get("deleted"):
        out["deleted"] = True
    if "doc" in row:
        out["doc"] = row["doc"]
    return out


class RemoteDatabase:
    """One database on a CouchDB-compatible server, as a ``sync.database.Database``."""

    def __init__(
        self,
        server: str | couchdb.Server,
        name: str,
        *,
        timeout: float = 30.0,
        gzip: bool = False,
        use_bulk_get: bool = True,
    ) -> None:
        """Address database ``name`` on ``server`` (a URL, credentials may be in it, or a
        ``couchdb.Server``, whose own session and timeout are then used); no request is sent.

        ``gzip`` compresses the bodies of the bulk calls and accepts gzipped answers to the
        bulk reads; ``use_bulk_get=False`` fetches revisions with ``open_revs`` GETs
        instead of ``_bulk_get``. Safe to call from two threads at once (the replicator reads
        the next batch while it writes one)."""
        self.server = server if isinstance(server, couchdb.Server) else connect(server, timeout)
        self.name = name
        self.resource: couch_http.Resource = self.server.resource(name)
        self.gzip = gzip
        self.use_bulk_get = use_bulk_get
        self.bytes_sent = 0
        """Request body bytes sent so far, as on the wire (after gzip); headers not counted."""
        self.bytes_received = 0
        """Answer body bytes received so far, as on the wire (before gunzip); no headers."""
        self.requests_sent = 0
        """HTTP requests sent so far."""
        self._counting = threading.Lock()
        self._identity: str | None = None
        self._known_filters: set[str] = set()

    def __repr__(self) -> str:
        return f"RemoteDatabase({self.resource.url!r})"

    # -- HTTP ------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: Sequence[str] = (),
        params: Iterable[tuple[str, Any]] = (),
        body: Any = None,
        *,
        compress: bool = False,
        gzip_answer: bool = False,
        accept: str = "application/json",
        root: bool = False,
    ) -> tuple[int, Any, bytes]:
        """One request; returns (status, headers, raw body, gunzipped if it came gzipped).
        Raises couchdb.http errors.

        ``compress`` gzips the body, ``gzip_answer`` accepts a gzipped answer (read-only
        calls only: a gzipped error answer makes it ask again), both only with ``gzip=True``."""
        base = self.server.resource.url if root else self.resource.url
        url = couch_http.urljoin(base, *path)
        query = [(k, "true" if v is True else str(v)) for k, v in params if v is not None]
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": accept}
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
            if compress and self.gzip and len(data) >= GZIP_MIN_BYTES:
                data = gzip_module.compress(data, compresslevel=6)
                headers["Content-Encoding"] = "gzip"
        if gzip_answer and self.gzip:
            headers["Accept-Encoding"] = "gzip"
        while True:
            self._count(requests=1, sent=len(data) if data is not None else 0)
            try:
                status, response_headers, stream = self.resource.session.request(
                    method, url, body=data, headers=headers, credentials=self.resource.credentials
                )
                break
            except UnicodeDecodeError:  # couchdb-python could not read a gzipped error answer
                if headers.pop("Accept-Encoding", None) is None:
                    raise
        raw = stream.read() if stream is not None else b""
        self._count(received=len(raw))
        if response_headers is not None and response_headers.get("Content-Encoding") == "gzip":
            raw = gzip_module.decompress(raw)
        return status, response_headers, raw

    def _count(self, *, requests: int = 0, sent: int = 0, received: int = 0) -> None:
        """Add to the counters (under a lock: two threads may share this database)."""
        with self._counting:
            self.requests_sent += requests
            self.bytes_sent += sent
            self.bytes_received += received

    def _json(
        self,
        method: str,
        path: Sequence[str] = (),
        params: Iterable[tuple[str, Any]] = (),
        body: Any = None,
        *,
        compress: bool = False,
        gzip_answer: bool = False,
        root: bool = False,
    ) -> Any:
        """One JSON request with every error status mapped to a SyncError kind."""
        with couch_errors(every_status=True):
            _, _, raw = self._send(
                method, path, params, body, compress=compress, gzip_answer=gzip_answer, root=root
            )
        return json.loads(raw) if raw else None

    # -- the Database protocol -------------------------------------------------------------

    def identity(self) -> str:
        """``couchdb:{server uuid}/{name}``, or the URL without credentials if no uuid."""
        if self._identity is None:
            root = self._json("GET", root=True)
            uuid = root.get("uuid") if isinstance(root, dict) else None
            base = self.server.resource.url.rstrip("/")
            self._identity = f"couchdb:{uuid}/{self.name}" if uuid else f"{base}/{self.name}"
        return self._identity

    def info(self) -> Doc:
        """``{"db_name", "doc_count", "update_seq", "instance_start_time"}``."""
        raw = self._json("GET")
        return {
            "db_name": raw["db_name"],
            "doc_count": raw["doc_count"],
            "update_seq": raw["update_seq"],
            "instance_start_time": str(raw.get("instance_start_time", "0")),
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
        """The winning revision (or ``rev``), optionally with ``_revisions``, ``_conflicts``
        and inline attachments. Raises DocNotFound."""
        if rev is not None:
            _check_rev(rev)
        params = [
            ("rev", rev),
            ("revs", revs or None),
            ("conflicts", conflicts or None),
            ("attachments", attachments or None),
        ]
        return self._json("GET", _doc_path(doc_id), params)

    def open_revs(
        self,
        doc_id: str,
        revs: Sequence[str] | Literal["all"],
        *,
        attachments: bool = False,
    ) -> list[Doc]:
        """``[{"ok": doc} | {"missing": rev}]`` for the leaves asked for (``"all"``: every
        leaf), each with ``_revisions``. ``"all"`` of an unknown document: DocNotFound."""
        if revs != "all":
            revs = list(revs)
            for rev in revs:
                _check_rev(rev)
            if not revs:
                return []
        wanted = "all" if revs == "all" else json.dumps(revs)
        params = [("revs", True), ("open_revs", wanted), ("attachments", attachments or None)]
        answer = self._json("GET", _doc_path(doc_id), params, gzip_answer=True)
        if revs == "all":
            return answer
        # CouchDB lists the found revisions first, then the missing; pouchdb keeps the order
        # asked. Answered here in the order asked, each revision once.
        by_rev = {
            item["ok"]["_rev"] if "ok" in item else item.get("missing"): item for item in answer
        }
        return [by_rev.get(rev, {"missing": rev}) for rev in dict.fromkeys(revs)]

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
        """One page of ``_changes`` after ``since`` (sent verbatim), as
        ``{"results": [...], "last_seq": seq}``. ``filter`` is ``"ddoc/name"``."""
        if style not in ("main_only", "all_docs"):
            raise BadRequest(f"style must be main_only or all_docs, not {style!r}")
        if limit is not None and limit < 0:
            raise BadRequest(f"limit must be a non-negative integer, not {limit!r}")
        if limit == 0:  # pouchdb-server would answer one row
            return {"results": [], "last_seq": since}
        params: list[tuple[str, Any]] = [
            ("feed", "normal"),
            ("style", "all_docs" if style == "all_docs" else None),
            ("since", since),
            ("limit", limit),
            ("include_docs", include_docs or None),
        ]
        body = None
        method = "GET"
        if doc_ids is not None:
            if filter is not None:
                raise BadRequest("changes takes either a filter or doc_ids, not both")
            doc_ids = list(doc_ids)
            if not doc_ids:
                return {"results": [], "last_seq": since}
            method, body = "POST", {"doc_ids": doc_ids}
            params.append(("filter", "_doc_ids"))
        elif filter is not None:
            params.append(("filter", filter))
            for key, value in (query_params or {}).items():
                if key in _CHANGES_OPTIONS:
                    raise BadRequest(
                        f"filter query parameter {key!r} clashes with a _changes option"
                    )
                params.append((key, value))
            self._check_filter(filter)
        page = self._json(method, ["_changes"], params, body, compress=True, gzip_answer=True)
        return {
            "results": [_change_row(row) for row in page["results"]],
            "last_seq": page["last_seq"],
        }

    def _check_filter(self, filter: str) -> None:
        """Make sure filter ``ddoc/name`` exists before naming it to the server.

        pouchdb-server crashes on a missing one (CouchDB answers 404); checked once per
        instance. A reader who may not read design documents (pouchdb-server: non-admins)
        goes unchecked."""
        ddoc, slash, name = filter.partition("/")
        if filter.startswith("_") or not slash or not ddoc or not name:
            raise BadRequest(f"filter must name a design document filter 'ddoc/name': {filter!r}")
        if filter in self._known_filters:
            return
        try:
            design = self._json("GET", ["_design", ddoc])
        except CouchRejected:
            return
        if name not in (design.get("filters") or {}):
            raise DocNotFound(f"no filter {name!r} in _design/{ddoc}")
        self._known_filters.add(filter)

    def revs_diff(self, revs: Mapping[str, Sequence[str]]) -> dict[str, dict[str, list[str]]]:
        """``{id: {"missing": [...]}}`` for the revisions this database lacks."""
        # Duplicates are dropped: pouchdb-server would list a missing one twice.
        asked = {doc_id: list(dict.fromkeys(revs[doc_id])) for doc_id in revs if revs[doc_id]}
        for rev_list in asked.values():
            for rev in rev_list:
                _check_rev(rev)
        if not asked:
            return {}
        answer = self._json("POST", ["_revs_diff"], (), asked, compress=True, gzip_answer=True)
        answer = answer or {}
        return {
            doc_id: {"missing": list(entry["missing"])}
            for doc_id, entry in answer.items()
            if entry.get("missing")
        }

    def bulk_get(
        self, docs: Sequence[Mapping[str, str]], *, attachments: bool = False
    ) -> list[Doc]:
        """One CouchDB ``_bulk_get`` result per request, in order: ``[{"id", "docs": [{"ok":
        doc} | {"error": {"id", "rev", "error", "reason"}}]}]``; each ``rev`` is required."""
        requests = [(str(doc["id"]), str(doc["rev"])) for doc in docs]
        wanted = [(doc_id, rev) for doc_id, rev in requests if _REV.fullmatch(rev)]
        answers: dict[str, list[Mapping[str, Any]]] | None = None
        if wanted and self.use_bulk_get:
            answers = self._bulk_get(wanted, attachments)
        if wanted and answers is None:
            answers = self._open_revs_per_id(wanted, attachments)
            self.use_bulk_get = False  # the fallback worked: keep using it on this server
        results: list[Doc] = []
        for doc_id, rev in requests:
            if _REV.fullmatch(rev):
                item = _match(doc_id, rev, (answers or {}).get(doc_id, ()))
            else:  # never sent: pouchdb-server would fail every revision of the id with it
                item = _error_item(doc_id, rev, "bad_request", "Invalid rev format")
            results.append({"id": doc_id, "docs": [item]})
        return results

    def _bulk_get(
        self, requests: Sequence[tuple[str, str]], attachments: bool
    ) -> dict[str, list[Mapping[str, Any]]] | None:
        """The server's ``_bulk_get`` answers grouped by id, or None if it has no usable
        ``_bulk_get`` (any non-2xx but 401/403/409/413 and network failures, which raise)."""
        body = {"docs": [{"id": doc_id, "rev": rev} for doc_id, rev in requests]}
        params = [("revs", True), ("attachments", attachments or None)]
        try:
            with couch_errors():  # 401/403/409 and network errors; the rest comes through
                _, _, raw = self._send(
                    "POST", ["_bulk_get"], params, body, compress=True, gzip_answer=True
                )
        except couch_http.ServerError as exc:
            if exc.args and exc.args[0][0] == 413:
                raise RequestTooLarge(f"_bulk_get of {len(requests)} revisions") from exc
            return None
        except (couch_http.ResourceNotFound, couch_http.PreconditionFailed):
            return None
        try:
            results = json.loads(raw)["results"]
        except (ValueError, KeyError, TypeError):
            return None
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for result in results:
            grouped.setdefault(result.get("id"), []).extend(result.get("docs") or [{}])
        return grouped

    def _open_revs_per_id(
        self, requests: Sequence[tuple[str, str]], attachments: bool
    ) -> dict[str, list[Mapping[str, Any]]]:
        """The ``_bulk_get`` fallback: one ``open_revs`` GET per id."""
        by_id: dict[str, list[str]] = {}
        for doc_id, rev in requests:
            if rev not in by_id.setdefault(doc_id, []):
                by_id[doc_id].append(rev)
        answers: dict[str, list[Mapping[str, Any]]] = {}
        for doc_id, revs in by_id.items():
            # A document the server does not have answers [{"missing": rev}]; a 404 means the
            # database is gone, and DocNotFound propagates.
            try:
                answers[doc_id] = list(self.open_revs(doc_id, revs, attachments=attachments))
            except BadRequest as exc:
                answers[doc_id] = [{"error": "bad_request", "reason": str(exc)}]
        return answers

    def bulk_docs(self, docs: Sequence[Doc], *, new_edits: bool = True) -> list[Doc]:
        """Write ``docs`` in one ``_bulk_docs``. With ``new_edits``: one ``{"ok", "id", "rev"}``
        or ``{"id", "error", "reason"}`` per document; without: only the errors, each
        ``{"id", "rev", "error", "reason"}``. A replicated document (``new_edits=False``) with
        neither ``_rev`` nor ``_revisions`` raises BadRequest and nothing is written."""
        docs = list(docs)
        if not docs:
            return []
        if not new_edits:
            bad = [d.get("_id") for d in docs if "_rev" not in d and "_revisions" not in d]
            if bad:
                raise BadRequest(f"new_edits=false needs _rev or _revisions: {bad[:5]}")
        body: Doc = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        answer = self._json("POST", ["_bulk_docs"], (), body, compress=True)
        if new_edits:
            return [self._write_result(item) for item in _in_request_order(docs, answer)]
        return self._replicated_errors(docs, [item for item in answer if "error" in item])

    @staticmethod
    def _write_result(item: Mapping[str, Any]) -> Doc:
        """A ``_bulk_docs`` result item in CouchDB 3's shape."""
        if "error" in item:
            return {
                "id": item.get("id"),
                "error": item["error"],
                "reason": item.get("reason", ""),
            }
        return {"ok": True, "id": item["id"], "rev": item["rev"]}

    @staticmethod
    def _replicated_errors(docs: Sequence[Doc], errors: Sequence[Mapping[str, Any]]) -> list[Doc]:
        """Error items of a ``new_edits=false`` write, each with the ``rev`` sent (pouchdb-server
        leaves it out; errors come in the order of the documents)."""
        position: dict[str, int] = {}
        out: list[Doc] = []
        for item in errors:
            doc_id = str(item.get("id"))
            rev = item.get("rev")
            if rev is None:
                start = position.get(doc_id, 0)
                for index in range(start, len(docs)):
                    if docs[index].get("_id") == doc_id:
                        rev = docs[index].get("_rev") or _revisions_head(docs[index])
                        position[doc_id] = index + 1
                        break
            out.append(
                {
                    "id": doc_id,
                    "rev": rev,
                    "error": item["error"],
                    "reason": item.get("reason", ""),
                }
            )
        return out

    def put(self, doc: Doc) -> str:
        """Write ``doc`` as a new edit of its ``_rev`` (none: new); return the new rev.
        Raises CouchConflict when ``_rev`` is not a current leaf."""
        if "_id" not in doc:
            raise BadRequest("put needs a document with an _id")
        return self._json("PUT", _doc_path(doc["_id"]), (), doc)["rev"]

    def get_local(self, local_id: str) -> Doc | None:
        """The ``_local/`` document (``local_id`` with or without the prefix), or None."""
        try:
            return self._json("GET", ["_local", local_id.removeprefix("_local/")])
        except DocNotFound:
            return None

    def put_local(self, doc: Doc) -> str:
        """Write a ``_local/`` document (``_id`` with the prefix); a stale or missing ``_rev``
        of an existing one raises CouchConflict. Returns its rev (``0-N``)."""
        doc_id = doc.get("_id")
        if not isinstance(doc_id, str) or not doc_id.startswith("_local/"):
            raise BadRequest(f"a local document id starts with '_local/': {doc_id!r}")
        return self._json("PUT", _doc_path(doc_id), (), doc)["rev"]

    def get_attachment(self, doc_id: str, name: str, *, rev: str | None = None) -> bytes:
        """The bytes of attachment ``name``. Raises DocNotFound."""
        if rev is not None:
            _check_rev(rev)
        with couch_errors(every_status=True):
            _, _, raw = self._send("GET", [*_doc_path(doc_id), name], [("rev", rev)], accept="*/*")
        return raw


def _revisions_head(doc: Mapping[str, Any]) -> str | None:
    """``N-hash`` of the newest revision in a document's ``_revisions``, if any."""
    revisions = doc.get("_revisions")
    if not isinstance(revisions, Mapping) or not revisions.get("ids"):
        return None
    return f"{revisions['start']}-{revisions['ids'][0]}"


def _in_request_order(docs: Sequence[Doc], results: Sequence[Mapping[str, Any]]) -> list[Any]:
    """``_bulk_docs`` results in the order of the documents sent, as CouchDB answers them.

    pouchdb-server lists validation errors before the successes (probed); results are matched
    to documents by id, in order, and those of documents sent without an ``_id`` fill the
    remaining places."""
    sent_ids = {doc["_id"] for doc in docs if "_id" in doc}
    named: dict[Any, list[Mapping[str, Any]]] = {}
    unnamed: list[Mapping[str, Any]] = []
    for item in results:
        if item.get("id") in sent_ids:
            named.setdefault(item.get("id"), []).append(item)
        else:
            unnamed.append(item)
    ordered: list[Any] = []
    for doc in docs:
        queue = named.get(doc["_id"], []) if "_id" in doc else unnamed
        if queue:
            ordered.append(queue.pop(0))
    ordered.extend(unnamed)
    ordered.extend(item for items in named.values() for item in items)
    return ordered
