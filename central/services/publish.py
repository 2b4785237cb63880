"""Publishing: freeze the catalogue as version N and write it to the `catalogue` database."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.db.models import CatalogueVersion, Item, MaterialTemplate
from central.services.catalogue import item_value
from sync.couch import ensure_database, get_document, save_document

__all__ = [
    "PublishResult",
    "publish",
    "restore_published",
    "latest_version",
    "item_doc_id",
    "manifest_doc_id",
]

CATALOGUE = "catalogue"


@dataclass(frozen=True)
class PublishResult:
    """The version the catalogue is at after a publish, and whether this publish made it."""

    version: int
    created: bool
    item_count: int


def item_doc_id(code: str, version: int) -> str:
    """Id of an item's document in one version (zero-padded so ids sort by version)."""
    return f"catalogue_item:{code}:{version:06d}"


def manifest_doc_id(version: int) -> str:
    """Id of a version's manifest."""
    return f"catalogue_manifest:{version:06d}"


def latest_version(session: Session) -> CatalogueVersion | None:
    """The newest published version, if any."""
    return session.scalars(
        select(CatalogueVersion).order_by(CatalogueVersion.version.desc())
    ).first()


def publish(session: Session, server: Any, user: str) -> PublishResult:
    """Publish the active items as a new version, unless nothing changed since the last one.

    Item documents are written first, the manifest last and the SQL record after that, so a
    failure at any point leaves the previous version whole: readers trust only manifests. Each
    write is an upsert, so publishing again after a failure rewrites the same version.
    """
    items, by_item, fingerprint = _working_copy(session)
    last = latest_version(session)
    db = ensure_database(server, CATALOGUE)
    if last is not None and last.fingerprint == fingerprint:
        if get_document(db, manifest_doc_id(last.version)) is None:
            # CouchDB lost the version SQL says is published (a restored or new server):
            # write it again under the same number.
            _write_version(
                db, items, by_item, last.version, last.published_at, last.published_by, fingerprint
            )
        return PublishResult(last.version, False, last.item_count)
    version = (session.scalar(select(func.max(CatalogueVersion.version))) or 0) + 1
    now = datetime.now(UTC)
    _write_version(db, items, by_item, version, now, user, fingerprint)
    session.add(
        CatalogueVersion(
            version=version,
            fingerprint=fingerprint,
            item_count=len(items),
            published_at=now,
            published_by=user,
        )
    )
    session.commit()
    return PublishResult(version, True, len(items))


def restore_published(session: Session, server: Any) -> str:
    """Rewrite the newest published version if CouchDB lacks it and the working copy still
    equals it: ``"intact"``, ``"rewritten"``, ``"none"`` (never published) or ``"changed"``
    (lost, and edits since then mean it cannot be rebuilt: publish a new version)."""
    last = latest_version(session)
    if last is None:
        return "none"
    db = ensure_database(server, CATALOGUE)
    if get_document(db, manifest_doc_id(last.version)) is not None:
        return "intact"
    items, by_item, fingerprint = _working_copy(session)
    if fingerprint != last.fingerprint:
        return "changed"
    _write_version(
        db, items, by_item, last.version, last.published_at, last.published_by, fingerprint
    )
    return "rewritten"


def _working_copy(
    session: Session,
) -> tuple[Sequence[Item], dict[str, list[MaterialTemplate]], str]:
    """The active items, their templates by item, and the fingerprint of both."""
    items = session.scalars(select(Item).where(Item.retired.is_(False)).order_by(Item.code)).all()
    templates = session.scalars(
        select(MaterialTemplate).order_by(
            MaterialTemplate.item_code, MaterialTemplate.material_key, MaterialTemplate.filename
        )
    ).all()
    by_item: dict[str, list[MaterialTemplate]] = {}
    for tpl in templates:
        by_item.setdefault(tpl.item_code, []).append(tpl)
    return items, by_item, _fingerprint(items, by_item)


def _write_version(
    db: Any,
    items: Sequence[Item],
    templates: dict[str, list[MaterialTemplate]],
    version: int,
    when: datetime,
    user: str,
    fingerprint: str,
) -> None:
    """Item documents first, the manifest last (readers trust only manifests)."""
    now = when if when.tzinfo else when.replace(tzinfo=UTC)
    for row in items:
        save_document(db, _item_doc(row, templates.get(row.code, []), version, now))
    save_document(
        db,
        {
            "_id": manifest_doc_id(version),
            "type": "catalogue_manifest",
            "version": version,
            "published_at": now.isoformat(timespec="seconds"),
            "published_by": user,
            "fingerprint": fingerprint,
            "items": [
                {
                    "code": row.code,
                    "name": row.name,
                    "kind": row.kind,
                    "doc": item_doc_id(row.code, version),
                }
                for row in items
            ],
        },
    )


def _fingerprint(items: Any, templates: dict[str, list[MaterialTemplate]]) -> str:
    digest = hashlib.sha256()
    for row in items:
        digest.update(json.dumps(row.body, sort_keys=True, ensure_ascii=False).encode())
        for tpl in templates.get(row.code, []):
            digest.update(f"{tpl.material_key}/{tpl.filename}:{tpl.sha256}".encode())
    return digest.hexdigest()


def _item_doc(
    row: Item, templates: list[MaterialTemplate], version: int, now: datetime
) -> dict[str, Any]:
    item = item_value(row)
    doc: dict[str, Any] = {
        "_id": item_doc_id(row.code, version),
        "type": "catalogue_item",
        "version": version,
        "published_at": now.isoformat(timespec="seconds"),
        **row.body,
        "kind_label": item.kind.label,
        "initials": row.initials,
    }
    if templates:
        doc["_attachments"] = {
            f"{tpl.material_key}/{tpl.filename}": {
                "content_type": tpl.content_type,
                "data": base64.b64encode(tpl.data).decode(),
            }
            for tpl in templates
        }
    return doc
