"""The catalogue as the kiosk holds it: the newest manifest in the store and its item documents."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.catalogue import CatalogueItem, Kind
from sync.errors import DocNotFound
from sync.store import SQLiteStore

__all__ = ["GuideItem", "Template", "CatalogueView", "KioskCatalogue"]

MANIFEST_PREFIX = "catalogue_manifest:"


@dataclass(frozen=True)
class Template:
    """A material's template file, an attachment of the item document."""

    material_key: str
    filename: str
    content_type: str
    length: int

    @property
    def name(self) -> str:
        """The attachment name: ``<material key>/<file name>``."""
        return f"{self.material_key}/{self.filename}"


@dataclass(frozen=True)
class GuideItem:
    """One item of the held catalogue version, with its search key and templates."""

    doc_id: str
    item: CatalogueItem
    initials: str
    templates: tuple[Template, ...] = ()

    def templates_of(self, material_key: str) -> list[Template]:
        """The templates of one material."""
        return [t for t in self.templates if t.material_key == material_key]

    def matches(self, query: str) -> bool:
        """Name, code or pinyin initials contain ``query``."""
        q = query.strip().lower()
        return (
            not q
            or q in self.item.name.lower()
            or q in self.item.code.lower()
            or (q in self.initials)
        )


@dataclass(frozen=True)
class CatalogueView:
    """One catalogue version: its number, publication time and items in manifest order."""

    version: int
    published_at: str
    items: tuple[GuideItem, ...] = ()
    by_code: dict[str, GuideItem] = field(default_factory=dict)

    def search(self, query: str = "", kind: str = "") -> list[GuideItem]:
        """Items of ``kind`` (all kinds if empty) matching ``query``."""
        return [g for g in self.items if (not kind or g.item.kind == kind) and g.matches(query)]

    def count_by_kind(self) -> dict[Kind, int]:
        """How many items each of the four kinds has."""
        return {k: sum(1 for g in self.items if g.item.kind is k) for k in Kind}


def _templates(doc: dict[str, Any]) -> tuple[Template, ...]:
    found = []
    for name, stub in sorted((doc.get("_attachments") or {}).items()):
        key, _, filename = name.partition("/")
        found.append(
            Template(
                key,
                filename or key,
                str(stub.get("content_type") or "application/octet-stream"),
                int(stub.get("length") or 0),
            )
        )
    return tuple(found)


class KioskCatalogue:
    """Follows the store's changes for manifests and keeps the newest version's items loaded."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._since: Any = 0
        self._manifests: set[str] = set()
        self._view: CatalogueView | None = None

    def current(self) -> CatalogueView | None:
        """The newest complete catalogue version in the store, or None if there is none."""
        with self._lock:
            page = self.store.changes(since=self._since)
            for row in page["results"]:
                if row["id"].startswith(MANIFEST_PREFIX) and not row.get("deleted"):
                    self._manifests.add(row["id"])
            self._since = page["last_seq"]
            for doc_id in sorted(self._manifests, reverse=True):
                if self._view is not None and doc_id == self._manifest_id(self._view):
                    return self._view
                view = self._load(doc_id)
                if view is not None:
                    self._view = view
                    return view
            return self._view

    @staticmethod
    def _manifest_id(view: CatalogueView) -> str:
        return f"{MANIFEST_PREFIX}{view.version:06d}"

    def _load(self, manifest_id: str) -> CatalogueView | None:
        """A version whose manifest and item documents are all here (else None: still arriving)."""
        try:
            manifest = self.store.get(manifest_id)
        except DocNotFound:
            return None
        items = []
        for entry in manifest.get("items") or []:
            try:
                doc = self.store.get(str(entry["doc"]))
            except DocNotFound:
                return None
            item = msgspec.convert(doc, CatalogueItem, strict=False)
            items.append(
                GuideItem(doc["_id"], item, str(doc.get("initials") or ""), _templates(doc))
            )
        return CatalogueView(
            version=int(manifest.get("version") or 0),
            published_at=str(manifest.get("published_at") or ""),
            items=tuple(items),
            by_code={g.item.code: g for g in items},
        )

    def item(self, code: str) -> GuideItem | None:
        """An item of the current version by its code."""
        view = self.current()
        return view.by_code.get(code) if view is not None else None
