"""Kiosk enrolment documents, as they come up from the townships into the `district` database."""

from __future__ import annotations

from typing import Any

from couchdb import http as couch_http

from sync.couch import couch_errors
from sync.errors import SyncError

__all__ = ["enrolments_by_registration", "DISTRICT_DB"]

DISTRICT_DB = "district"


def enrolments_by_registration(couch: Any) -> tuple[dict[str, dict[str, Any]], bool]:
    """Enrolment documents keyed by registration id, and whether CouchDB could be read.

    Before any township has synced the `district` database may not exist: then none are enrolled.
    """
    try:
        with couch_errors():
            try:
                db = couch.server()[DISTRICT_DB]
            except couch_http.ResourceNotFound:
                return {}, True
            rows = db.view(
                "_all_docs", startkey="enrolment:", endkey="enrolment:\ufff0", include_docs=True
            )
            docs = [row.doc for row in rows if row.doc]
    except SyncError:
        return {}, False
    return {doc["registration"]: doc for doc in docs if "registration" in doc}, True
