"""The catalogue as a township node reads it: the newest complete version in its replicated
``catalogue`` database (written by the district's publish only), its items in manifest order.

Replication may bring a manifest before all its item documents; a version counts once every
item it lists is here, else the previous one is used. The loaded version is kept until a newer
manifest appears (one ``_all_docs`` range read per look).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.catalogue import CatalogueItem, Kind
from sync.couch import couch_errors
from sync.errors import DocNotFound

__all__ = ["CATALOGUE_DB", "CatalogueEntry", "CatalogueVersion", "TownshipCatalogue"]

CATALOGUE_DB = "catalogue"
MANIFEST_PREFIX = "catalogue_manifest:"


@dataclass(frozen=True)
class CatalogueEntry:
    """One item of a version, with its pinyin initials for search."""

    item: CatalogueItem
    initials: str = ""

    def matches(self, query: str) -> bool:
        """Name, code or pinyin initials contain ``query``."""
        q = query.strip().lower()
        return not q or q in self.item.name.lower() or q in self.item.code.lower() or (
            q in self.initials.lower()
        )  # fmt: skip


@dataclass(frozen=True)
class CatalogueVersion:
    """One published version: its number and items in manifest order."""

    version: int
    published_at: str
    entries: tuple[CatalogueEntry, ...] = ()
    by_code: dict[str, CatalogueEntry] = field(default_factory=dict)

    def search(self, query: str = "", kind: str = "") -> list[CatalogueEntry]:
        """Items of ``kind`` (all kinds if empty) matching ``query``."""
        return [e for e in self.entries if (not kind or e.item.kind == kind) and e.matches(query)]

    def count_by_kind(self) -> dict[Kind, int]:
        """How many items each of the four kinds has."""
        return {k: sum(1 for e in self.entries if e.item.kind is k) for k in Kind}


class TownshipCatalogue:
    """Reads the newest complete catalogue version from the township's CouchDB."""

    def __init__(self, database: str = CATALOGUE_DB) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._current: CatalogueVersion | None = None

    def current(self, server: Any) -> CatalogueVersion | None:
        """The newest complete version, or None while none has arrived."""
        with couch_errors(every_status=True):
            try:
                db = server[self.database]
                rows = list(
                    db.view(
                        "_all_docs", startkey=MANIFEST_PREFIX + "\ufff0",
                        endkey=MANIFEST_PREFIX, descending=True,
                    )
                )  # fmt: skip
            except DocNotFound:  # not replicated here yet
                return None
        with self._lock:
            for row in rows:
                if self._current is not None and row.id == _manifest_id(self._current.version):
                    return self._current
                loaded = _load(db, row.id)
                if loaded is not None:
                    self._current = loaded
                    return loaded
            return self._current

    def item(self, server: Any, code: str) -> tuple[CatalogueItem, int] | None:
        """An item of the current version by its code, with the version number."""
        view = self.current(server)
        entry = view.by_code.get(code.strip()) if view is not None else None
        return (entry.item, view.version) if entry is not None and view is not None else None


def _manifest_id(version: int) -> str:
    return f"{MANIFEST_PREFIX}{version:06d}"


def _load(db: Any, manifest_id: str) -> CatalogueVersion | None:
    """The version of ``manifest_id`` if its manifest and every item are here, else None."""
    with couch_errors():
        manifest = db.get(manifest_id)
        if manifest is None:
            return None
        ids = [str(entry["doc"]) for entry in manifest.get("items") or []]
        rows = list(db.view("_all_docs", keys=ids, include_docs=True)) if ids else []
    docs = {r.id: r.doc for r in rows if getattr(r, "doc", None)}
    entries = []
    for doc_id in ids:
        doc = docs.get(doc_id)
        if doc is None:
            return None  # still arriving
        try:
            item = msgspec.convert(dict(doc), CatalogueItem, strict=False)
        except msgspec.ValidationError:
            continue  # a document this software cannot read: offered nowhere
        entries.append(CatalogueEntry(item, str(doc.get("initials") or "")))
    return CatalogueVersion(
        version=int(manifest.get("version") or 0),
        published_at=str(manifest.get("published_at") or ""),
        entries=tuple(entries),
        by_code={e.item.code: e for e in entries},
    )
