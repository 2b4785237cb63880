"""What has been published: the versions (SQL) and the newest catalogue as CouchDB holds it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from couchdb import http as couch_http
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db.models import CatalogueVersion
from central.services.publish import CATALOGUE
from core.catalogue import CatalogueItem
from sync.couch import couch_errors

__all__ = ["PublishedCatalogue", "versions", "current_catalogue"]

_MANIFESTS_END = "catalogue_manifest:\ufff0"
_MANIFESTS_START = "catalogue_manifest:"


@dataclass(frozen=True)
class PublishedCatalogue:
    """The newest published version: its number, when it was published and its active items."""

    version: int
    published_at: str
    items: tuple[CatalogueItem, ...]

    def item(self, code: str) -> CatalogueItem | None:
        """The item with ``code`` in this version, if it is there."""
        return next((i for i in self.items if i.code == code), None)


def versions(session: Session) -> Sequence[CatalogueVersion]:
    """Every published version, newest first."""
    return session.scalars(select(CatalogueVersion).order_by(CatalogueVersion.version.desc())).all()


def current_catalogue(server: Any) -> PublishedCatalogue | None:
    """The newest version in the `catalogue` database, or None before the first publish.

    Readers trust only manifests (publish writes the item documents first, the manifest
    last), so the newest manifest names exactly the item documents of a whole version.
    Raises a SyncError kind when CouchDB cannot be read.
    """
    with couch_errors():
        try:
            # Not `CATALOGUE in server`: couchdb-python answers False when the server is down.
            db = server[CATALOGUE]
        except couch_http.ResourceNotFound:
            return None
        rows = list(
            db.view(
                "_all_docs",
                descending=True,
                startkey=_MANIFESTS_END,
                endkey=_MANIFESTS_START,
                limit=1,
                include_docs=True,
            )
        )
        if not rows:
            return None
        manifest = rows[0].doc
        ids = [entry["doc"] for entry in manifest.get("items", [])]
        docs = (
            {
                row.id: row.doc
                for row in db.view("_all_docs", keys=ids, include_docs=True)
                if row.doc
            }
            if ids
            else {}
        )
    # Item documents carry publish fields (_id, version, kind_label…) besides the item's own;
    # converting keeps the item's and drops the rest.
    items = tuple(msgspec.convert(docs[i], CatalogueItem, strict=False) for i in ids if i in docs)
    return PublishedCatalogue(
        int(manifest["version"]), str(manifest.get("published_at", "")), items
    )
