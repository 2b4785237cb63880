"""An in-memory database that answers as Apache CouchDB 3 does where pouchdb-server differs.

It is the embedded store on an in-memory SQLite database (so the document semantics are the
store's, tested once), with two CouchDB 3 habits the development server lacks, so that the
replicator's handling of them runs in tests:

* update sequences are **opaque strings** (``"12-g1AAAA…"``), never integers;
* refusals are **403** ``forbidden``: by a ``validate`` function (a Python stand-in for a
  design document's ``validate_doc_update``) per document, or for every write when the
  database is ``read_only`` (a user with reader rights, e.g. a replication source that takes
  no checkpoints).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sync.database import ChangesPage, Doc, Seq
from sync.errors import BadRequest, CouchRejected
from sync.store import SQLiteStore

__all__ = ["MemoryDatabase", "Forbidden"]


class Forbidden(Exception):
    """Raised by a ``validate`` function to refuse a document (CouchDB's ``{forbidden: …}``)."""


class MemoryDatabase(SQLiteStore):
    """An in-memory CouchDB-3-like database (see the module docstring)."""

    def __init__(
        self,
        name: str = "memory",
        *,
        validate: Callable[[Doc], None] | None = None,
        read_only: bool = False,
        revs_limit: int = 1000,
    ) -> None:
        super().__init__(":memory:", name, revs_limit=revs_limit)
        self.validate = validate
        self.read_only = read_only
        self._salt = uuid.uuid4().hex

    # --- opaque sequences ------------------------------------------------------------------

    def _opaque(self, seq: int) -> str:
        tail = hashlib.sha1(f"{self._salt}:{seq}".encode()).hexdigest()[:24]
        return f"{seq}-g1AAAA{tail}"

    def _plain(self, since: Seq) -> Seq:
        if since in (0, "0", "now"):
            return since
        if isinstance(since, str) and "-" in since:
            number, _, _ = since.partition("-")
            if number.isdigit() and self._opaque(int(number)) == since:
                return int(number)
        raise BadRequest(f"invalid since: {since!r} (not a sequence of this database)")

    def info(self) -> Doc:
        """As the store's, with an opaque ``update_seq``."""
        info = super().info()
        info["update_seq"] = self._opaque(int(info["update_seq"]))
        return info

    def changes(self, *, since: Seq = 0, **options: Any) -> ChangesPage:  # type: ignore[override]
        """As the store's, with opaque ``seq`` and ``last_seq``; ``since`` must be one of ours."""
        page = super().changes(since=self._plain(since), **options)
        for row in page["results"]:
            row["seq"] = self._opaque(int(row["seq"]))
        page["last_seq"] = self._opaque(int(page["last_seq"]))
        return page

    # --- 403 refusals ----------------------------------------------------------------------

    def _refusal(self, doc: Mapping[str, Any]) -> str | None:
        if self.read_only:
            return "this user may only read this database"
        if self.validate is not None and not str(doc.get("_id", "")).startswith("_local/"):
            try:
                self.validate(dict(doc))
            except Forbidden as exc:
                return str(exc)
        return None

    def put(self, doc: Doc) -> str:
        """As the store's, unless refused (CouchRejected 403)."""
        reason = self._refusal(doc)
        if reason is not None:
            raise CouchRejected(403, "forbidden", reason)
        return super().put(doc)

    def put_local(self, doc: Doc) -> str:
        """As the store's, unless the database is read-only (CouchRejected 403)."""
        if self.read_only:
            raise CouchRejected(403, "forbidden", "this user may only read this database")
        return super().put_local(doc)

    def bulk_docs(self, docs: Sequence[Doc], *, new_edits: bool = True) -> list[Doc]:
        """As the store's; refused documents are listed as ``forbidden`` and not written."""
        refused: dict[int, Doc] = {}
        accepted: list[Doc] = []
        for i, doc in enumerate(docs):
            reason = self._refusal(doc)
            if reason is None:
                accepted.append(doc)
            else:
                refused[i] = {"id": doc.get("_id"), "error": "forbidden", "reason": reason}
                if "_rev" in doc:
                    refused[i]["rev"] = doc["_rev"]
        results = super().bulk_docs(accepted, new_edits=new_edits) if accepted else []
        if not new_edits:
            return list(refused.values()) + results
        merged, written = [], iter(results)
        for i in range(len(docs)):
            merged.append(refused[i] if i in refused else next(written))
        return merged
