"""Names of units (villages, townships) from the replicated ``directory``, cached briefly."""

from __future__ import annotations

import threading
import time
from typing import Any

from core.hierarchy import Level, level_of
from sync.couch import couch_errors
from sync.errors import SyncError

__all__ = ["unit_names", "villages_of"]

CACHE_SECONDS = 60.0
_lock = threading.Lock()


def _read(server: Any) -> dict[str, str]:
    with couch_errors():
        rows = server["directory"].view(
            "_all_docs", startkey="unit:", endkey="unit:\ufff0", include_docs=True
        )
        return {
            str(r.doc["code"]): str(r.doc.get("name") or r.doc["code"])
            for r in rows
            if r.doc and r.doc.get("type") == "unit" and r.doc.get("code")
        }


def unit_names(state: Any) -> dict[str, str]:
    """Code → name of every unit the township's directory holds (kept ``CACHE_SECONDS``; the
    last names known are kept while CouchDB cannot be read)."""
    with _lock:
        cached = getattr(state, "unit_names_cache", None)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return dict(cached[1])
        try:
            names = _read(state.couch())
        except SyncError:
            return dict(cached[1]) if cached else {}
        state.unit_names_cache = (time.monotonic(), names)
        return dict(names)


def villages_of(unit: str, names: dict[str, str]) -> list[str]:
    """The village codes under ``unit`` (a township, or the whole district) among ``names``."""
    prefix = unit[:6] if level_of(unit) is Level.DISTRICT else unit[:9]
    return sorted(
        code for code in names if code.startswith(prefix) and level_of(code) is Level.VILLAGE
    )
