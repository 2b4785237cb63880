"""The one document-database interface every store and the replicator speak.

It mirrors the CouchDB 3 HTTP API (see ../shared/REPLICATION_PROTOCOL.md) with JSON-shaped
dicts, so the remote adapter is a thin translation and the embedded stores behave like a server:

* documents are dicts with ``_id``, ``_rev`` and optionally ``_deleted``, ``_revisions``,
  ``_conflicts`` and ``_attachments`` (inline ``{"content_type", "data": base64}`` or stubs
  ``{"stub": true, "content_type", "digest", "length", "revpos"}``);
* update sequences (``Seq``) are opaque: an integer on some servers, a string on others. Callers
  store them and send them back verbatim; they never compare or increment them;
* errors are ``sync.errors`` kinds: ``DocNotFound`` (404), ``CouchRejected`` (401/403),
  ``CouchConflict`` (409), ``RequestTooLarge`` (413), ``CouchUnavailable`` (network).

Methods are synchronous; async code calls them through a thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["Database", "Seq", "Doc", "ChangesPage"]

Seq = int | str
"""An update sequence, opaque to every caller."""

Doc = dict[str, Any]
"""A JSON document."""

ChangesPage = dict[str, Any]
"""``{"results": [{"seq", "id", "changes": [{"rev"}], "deleted"?, "doc"?}], "last_seq"}``."""


@runtime_checkable
class Database(Protocol):
    """A CouchDB-compatible database: remote CouchDB, the embedded SQLite store, or memory."""

    name: str

    def identity(self) -> str:
        """A stable id of this database: server uuid and name (remote), store uuid (embedded).

        Replication ids are built from it, so it must not change across restarts."""
        ...

    def info(self) -> Doc:
        """``{"db_name", "doc_count", "update_seq", "instance_start_time"}``."""
        ...

    def get(
        self,
        doc_id: str,
        *,
        rev: str | None = None,
        revs: bool = False,
        conflicts: bool = False,
        attachments: bool = False,
    ) -> Doc:
        """The winning revision (or ``rev``); ``revs`` adds ``_revisions``, ``conflicts`` adds
        ``_conflicts``, ``attachments`` inlines attachment data. A deleted winner is not found.
        Raises DocNotFound."""
        ...

    def open_revs(
        self,
        doc_id: str,
        revs: Sequence[str] | Literal["all"],
        *,
        attachments: bool = False,
    ) -> list[Doc]:
        """Each requested leaf (``"all"``: every leaf, deleted ones too) with ``_revisions``:
        ``[{"ok": doc} | {"missing": rev}]``."""
        ...

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
        """One page of the changes feed after ``since``: each document once, at its newest seq.

        ``filter`` names a filter function ``"ddoc/name"`` (with ``query_params``); ``doc_ids``
        restricts to those ids (CouchDB's ``_doc_ids`` filter)."""
        ...

    def revs_diff(self, revs: Mapping[str, Sequence[str]]) -> dict[str, dict[str, list[str]]]:
        """For each id, the revisions this database lacks: ``{id: {"missing": [...]}}``;
        ids with nothing missing are left out."""
        ...

    def bulk_get(
        self, docs: Sequence[Mapping[str, str]], *, attachments: bool = False
    ) -> list[Doc]:
        """Fetch ``[{"id", "rev"}]`` with ``_revisions``, answered as CouchDB's ``results``:
        ``[{"id", "docs": [{"ok": doc} | {"error": {"id", "rev", "error", "reason"}}]}]``."""
        ...

    def bulk_docs(self, docs: Sequence[Doc], *, new_edits: bool = True) -> list[Doc]:
        """Write documents. With ``new_edits`` each gets a new revision and the answer lists
        ``{"ok": true, "id", "rev"}`` or ``{"id", "error", "reason"}`` per document; without,
        revisions (and their ``_revisions`` history) are stored as given and only errors are
        listed (CouchDB 3's answer)."""
        ...

    def put(self, doc: Doc) -> str:
        """Write one document as a new edit of ``doc["_rev"]`` (none: a new document); returns
        the new rev. Raises CouchConflict when ``_rev`` is not a current leaf."""
        ...

    def get_local(self, local_id: str) -> Doc | None:
        """A ``_local/`` document (never replicated, not in changes), or None."""
        ...

    def put_local(self, doc: Doc) -> str:
        """Write a ``_local/`` document (``_id`` includes the prefix); stale ``_rev`` → conflict.
        Returns its rev (``0-N``)."""
        ...

    def get_attachment(self, doc_id: str, name: str, *, rev: str | None = None) -> bytes:
        """An attachment's bytes. Raises DocNotFound."""
        ...
