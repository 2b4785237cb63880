"""CouchDB access through couchdb-python: sessions with socket timeouts and thin write helpers."""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import couchdb
from couchdb import http as couch_http

from sync.errors import (
    BadRequest,
    BulkSaveFailed,
    CouchConflict,
    CouchRejected,
    CouchUnavailable,
    DocNotFound,
    DocumentFailure,
    RequestTooLarge,
    SyncError,
)

__all__ = [
    "AnswerCutOff",
    "connect",
    "couch_errors",
    "ensure_database",
    "get_document",
    "save_document",
    "save_documents",
    "put_attachment",
    "get_attachment",
]

# Answers of a proxy or load balancer in front of a CouchDB cluster: the server is not there.
_UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class AnswerCutOff(http.client.HTTPException):
    """The connection closed in the middle of an answer's header block."""


class _FramedResponse(http.client.HTTPResponse):
    """An HTTP answer that refuses to be read when its header block was cut off.

    http.client takes the end of the stream for the end of the headers, so a link closed (FIN)
    in the middle of them gives an answer without Content-Length: couchdb-python then reads an
    empty body as a success, or trips over the missing Content-Type with a TypeError (probed
    with tests/tcpproxy.py). CouchDB and pouchdb-server frame every HTTP/1.1 answer
    (Content-Length or chunked) unless they say ``Connection: close``, so an unframed
    keep-alive answer was cut short: AnswerCutOff, which couch_errors maps to CouchUnavailable.
    """

    def begin(self) -> None:
        super().begin()
        closing = "close" in (self.getheader("connection") or "").lower()
        if self.version == 11 and self.length is None and not self.chunked and not closing:
            raise AnswerCutOff(f"answer {self.status} cut off in its headers")


class _FramedConnectionPool(couch_http.ConnectionPool):
    """couchdb-python's connection pool, its connections reading ``_FramedResponse``s."""

    def get(self, url: str) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection = super().get(url)
        conn.response_class = _FramedResponse
        return conn


def connect(url: str, timeout: float = 10.0) -> couchdb.Server:
    """Return a couchdb.Server for ``url`` (credentials may be in it) whose sockets time out
    and whose answers cut off by a dropped link raise (CouchUnavailable in couch_errors)."""
    session = couch_http.Session(timeout=timeout)
    session.connection_pool = _FramedConnectionPool(timeout)
    return couchdb.Server(url, session=session)


def _error_and_reason(detail: Any) -> tuple[str, str]:
    """Split the detail couchdb-python attaches to an HTTPError into (error, reason)."""
    if isinstance(detail, tuple) and len(detail) == 2:
        error, reason = detail
        return str(error or ""), str(reason or "")
    if isinstance(detail, bytes):
        return "", detail.decode("utf-8", "replace")
    return "", "" if detail is None else str(detail)


@contextmanager
def couch_errors(*, every_status: bool = False) -> Iterator[None]:
    """Translate couchdb-python and socket errors raised in the block into SyncError kinds.

    401/403 become CouchRejected, 409 CouchConflict, refused, reset or timed-out connections,
    answers cut short (IncompleteRead, BadStatusLine, AnswerCutOff) and 502/503/504
    CouchUnavailable; other HTTP errors (404, 400, 500) pass through unchanged,
    unless ``every_status`` is set: then 404 becomes DocNotFound, 400 and 412 BadRequest (and
    pouchdb-server's 500 ``doc_validation``), 413 RequestTooLarge, any other status SyncError.
    """
    try:
        yield
    except (couch_http.Unauthorized, couch_http.Forbidden) as exc:
        status = 401 if isinstance(exc, couch_http.Unauthorized) else 403
        error, reason = _error_and_reason(exc.args[0] if exc.args else None)
        raise CouchRejected(status, error, reason) from exc
    except couch_http.ResourceConflict as exc:
        error, reason = _error_and_reason(exc.args[0] if exc.args else None)
        raise CouchConflict(reason or error or "document update conflict") from exc
    except (couch_http.ResourceNotFound, couch_http.PreconditionFailed) as exc:
        if not every_status:
            raise
        error, reason = _error_and_reason(exc.args[0] if exc.args else None)
        if isinstance(exc, couch_http.ResourceNotFound):
            raise DocNotFound(f"{error or 'not_found'}: {reason or 'missing'}") from exc
        raise BadRequest(f"412 {error}: {reason}") from exc
    except couch_http.ServerError as exc:
        status, detail = exc.args[0]
        error, reason = _error_and_reason(detail)
        if status in _UNAVAILABLE_STATUSES:
            raise CouchUnavailable(f"CouchDB answered {status} {error} {reason}".strip()) from exc
        if not every_status:
            raise
        if status == 400 or (status == 500 and error == "doc_validation"):
            # pouchdb-server answers 500 where CouchDB says 400 to an invalid document body
            raise BadRequest(f"{error}: {reason}") from exc
        if status == 413:
            raise RequestTooLarge(f"{error}: {reason}") from exc
        raise SyncError(f"CouchDB answered {status} {error}: {reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise CouchUnavailable(f"CouchDB unreachable: {exc!r}") from exc


def ensure_database(server: couchdb.Server, name: str) -> couchdb.Database:
    """Return database ``name``, creating it if missing (a concurrent create is fine).

    Needs admin credentials on CouchDB 3; on pouchdb-server a PUT of a new database without
    admin rights kills the process, so call this only with an admin connection.
    """
    with couch_errors():
        try:
            return server[name]
        except couch_http.ResourceNotFound:
            pass
        try:
            return server.create(name)
        except couch_http.PreconditionFailed:
            return server[name]


def get_document(db: couchdb.Database, doc_id: str) -> dict | None:
    """Return the current body of ``doc_id`` as a plain dict, or None if it does not exist."""
    with couch_errors():
        doc = db.get(doc_id)
    return None if doc is None else dict(doc)


def save_document(db: couchdb.Database, doc: dict) -> str:
    """Write ``doc`` as the new content of ``doc["_id"]`` (single-writer upsert); return the rev.

    Any ``_rev`` in ``doc`` is ignored: the current one is fetched. Existing attachments are
    kept unless ``doc`` has its own ``_attachments``. ``doc`` itself is not modified.
    """
    doc_id = doc["_id"]
    body = {key: value for key, value in doc.items() if key != "_rev"}
    with couch_errors():
        current = db.get(doc_id)
        if current is not None:
            body["_rev"] = current["_rev"]
            if "_attachments" not in body and "_attachments" in current:
                body["_attachments"] = current["_attachments"]
        _, rev = db.save(body)
    return rev


def save_documents(db: couchdb.Database, docs: Iterable[dict]) -> list[tuple[str, str]]:
    """Write ``docs`` in one ``_bulk_docs`` request; return (id, rev) of each, in order.

    Each document carries its own ``_rev`` (none for a new one). If any is refused
    (conflict, validation, rights) BulkSaveFailed lists them; the others were stored.
    """
    batch = [dict(doc) for doc in docs]
    if not batch:
        return []
    with couch_errors():
        _, _, results = db.resource.post_json("_bulk_docs", body={"docs": batch})
    saved: list[tuple[str, str]] = []
    failures: list[DocumentFailure] = []
    for row in results:
        if "error" in row:
            failures.append(
                DocumentFailure(
                    str(row.get("id", "")), str(row["error"]), str(row.get("reason", ""))
                )
            )
        else:
            saved.append((row["id"], row["rev"]))
    if failures:
        raise BulkSaveFailed(failures, saved)
    return saved


def put_attachment(
    db: couchdb.Database, doc_id: str, name: str, content: bytes, content_type: str
) -> str:
    """Create or replace attachment ``name`` of the existing document ``doc_id``; return the rev."""
    with couch_errors():
        current = db.get(doc_id)
        if current is None:
            raise couch_http.ResourceNotFound(("not_found", f"document {doc_id} does not exist"))
        target = {"_id": doc_id, "_rev": current["_rev"]}
        db.put_attachment(target, content, filename=name, content_type=content_type)
    return target["_rev"]


def get_attachment(db: couchdb.Database, doc_id: str, name: str) -> bytes | None:
    """Return the bytes of attachment ``name`` of ``doc_id``, or None if either is missing."""
    with couch_errors():
        stream = db.get_attachment(doc_id, name)
        if stream is None:
            return None
        try:
            return stream.read()
        finally:
            stream.close()
