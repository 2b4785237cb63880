"""One-shot CouchDB replication between any two ``Database`` implementations.

``replicate`` follows ../shared/REPLICATION_PROTOCOL.md §1 step by step; each step says which.
``replicate_until_done`` wraps it with jittered exponential backoff for flaky links.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync.database import Database, Doc, Seq
from sync.errors import (
    CouchConflict,
    CouchRejected,
    CouchUnavailable,
    DocNotFound,
    RequestTooLarge,
    SyncError,
)

__all__ = [
    "Replication",
    "ReplicationResult",
    "ReplicationFailed",
    "replicate",
    "replicate_until_done",
    "replication_id",
]

log = logging.getLogger(__name__)

HISTORY = 5
"""Sessions kept in a checkpoint's history (PouchDB keeps 5)."""


class ReplicationFailed(SyncError):
    """A replication stopped before reaching the end of the source's changes."""


@dataclass(frozen=True)
class Replication:
    """What to replicate: the source, the target and an optional filter."""

    source: Database
    target: Database
    filter: str | None = None
    query_params: Mapping[str, str] = field(default_factory=dict)
    doc_ids: Sequence[str] | None = None
    batch_size: int = 100


@dataclass
class ReplicationResult:
    """What one run did; ``last_seq`` is the source sequence it checkpointed."""

    replication_id: str
    session_id: str
    start_seq: Seq
    last_seq: Seq
    docs_read: int = 0
    docs_written: int = 0
    doc_write_failures: int = 0
    denied: int = 0
    missing_checked: int = 0
    batches: int = 0
    failures: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    """The documents the target refused or could not take (``id``, ``error``, ``reason``):
    skipped and checkpointed past, so whoever runs the replication must report them."""


def replication_id(rep: Replication) -> str:
    """Step 2: a stable id from both ends' identities and the filter (hex md5 of canonical JSON)."""
    key = {
        "source": rep.source.identity(),
        "target": rep.target.identity(),
        "filter": rep.filter,
        "query_params": dict(sorted(rep.query_params.items())),
        "doc_ids": sorted(rep.doc_ids) if rep.doc_ids is not None else None,
    }
    canonical = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(canonical.encode()).hexdigest()


def replicate(
    rep: Replication, progress: Callable[[ReplicationResult], None] | None = None
) -> ReplicationResult:
    """Copy every change of ``rep.source`` the target lacks, checkpointing after each batch.

    Never checkpoints past a change that was not written: a batch whose documents could not
    be fetched or stored for a reason other than the target's refusal ends the run with
    ReplicationFailed (or the network error), and the next run resumes from the last checkpoint.
    Documents the target refuses (401/403, e.g. its validate_doc_update) are counted as
    ``denied`` and skipped, as CouchDB and PouchDB do.

    The next page is read in a second thread while this one is written, so both databases
    must accept calls from two threads (every backend in ``sync/`` does). ``progress`` is
    called in the calling thread after each checkpoint; a read in flight when the run ends
    (an error or an exception from ``progress``) is waited for and its answer dropped.
    """
    # 1. Check the peers (info raises if either is unreachable or refuses us).
    rep.source.info()
    rep.target.info()
    # 2. Replication id.  3. Checkpoints on both sides decide where to start.
    rep_id = replication_id(rep)
    checkpoints = _Checkpoints(rep, rep_id)
    since = checkpoints.start_seq()
    result = ReplicationResult(rep_id, uuid.uuid4().hex, since, since)
    # Steps 4-6 of the next page run in a reader thread while this thread writes the current
    # page and checkpoints it (PouchDB overlaps its batches the same way): the server works
    # while we read and encode, and the other way round. The reader only reads (changes and
    # bulk_get on the source, revs_diff on the target); counters, writes and checkpoints stay
    # in this thread, in page order, so nothing is checkpointed past an unwritten change.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="replicate-read") as reader:
        pending = reader.submit(_read_page, rep, since)
        try:
            while True:
                page = pending.result()
                if not page.rows:
                    # An empty page: checkpoint last_seq (a filtered feed may have moved it on).
                    checkpoints.record(result, page.last_seq)
                    return result
                since = page.rows[-1]["seq"]
                pending = reader.submit(_read_page, rep, since)
                result.batches += 1
                result.docs_read += len(page.rows)
                result.missing_checked += page.checked
                if page.failure is not None:
                    error = page.failure
                    result.failures.append(f"fetch {error.get('id')} {error.get('rev')}: {error}")
                    raise ReplicationFailed(
                        f"source could not supply {error.get('id')} {error.get('rev')}; "
                        "no checkpoint past it, the next run retries"
                    )
                # 7. Write them as they are (new_edits=false), halving the batch on 413.
                _write(rep.target, page.docs, result)
                # 9. Checkpoint this page's last seq: every change up to it is written or refused.
                checkpoints.record(result, since)
                if progress is not None:
                    progress(result)
        finally:
            pending.cancel()  # a read still running is waited for, and its answer dropped


@dataclass
class _Page:
    """One page of the source's changes, read and fetched, ready to be written."""

    rows: list[Doc]
    last_seq: Seq
    checked: int = 0
    docs: list[Doc] = field(default_factory=list)
    failure: dict[str, Any] | None = None


def _read_page(rep: Replication, since: Seq) -> _Page:
    """Steps 4-6 for the page after ``since``: its changes, what the target lacks of them,
    and those revisions fetched from the source (``failure``: the error item of one it could
    not supply)."""
    # 4. One page of changes, every leaf of each document (style=all_docs).
    answer = rep.source.changes(
        since=since,
        limit=rep.batch_size,
        style="all_docs",
        filter=rep.filter,
        query_params=rep.query_params or None,
        doc_ids=rep.doc_ids,
    )
    page = _Page(answer["results"], answer.get("last_seq", since))
    if not page.rows:
        return page
    # 5. Ask the target which of these revisions it lacks.
    revs = {row["id"]: [c["rev"] for c in row["changes"]] for row in page.rows}
    page.checked = sum(len(v) for v in revs.values())
    missing = rep.target.revs_diff(revs)
    wanted = [{"id": i, "rev": rev} for i, d in missing.items() for rev in d["missing"]]
    if wanted:
        # 6. Fetch the missing revisions with their history and attachments.
        page.docs, page.failure = _fetch(rep.source, wanted)
    return page


def _read_checkpoint(db: Database, local_id: str) -> Doc | None:
    try:
        return db.get_local(local_id)
    except CouchRejected:
        return None


def _fetch(
    source: Database, wanted: list[dict[str, str]]
) -> tuple[list[Doc], dict[str, Any] | None]:
    """Step 6: ``_bulk_get`` the wanted revisions; the error item of the first that cannot be
    had is returned as the failure, and the run must stop before writing the page."""
    docs: list[Doc] = []
    for entry in source.bulk_get(wanted, attachments=True):
        for item in entry["docs"]:
            if "ok" in item:
                docs.append(item["ok"])
            else:
                return docs, item.get("error", {})
    return docs, None


def _write(target: Database, docs: list[Doc], result: ReplicationResult) -> None:
    """Step 7: ``_bulk_docs`` with ``new_edits=false``; halve the batch while the target 413s."""
    if not docs:
        return
    try:
        errors = target.bulk_docs(docs, new_edits=False)
    except RequestTooLarge:
        if len(docs) == 1:
            result.doc_write_failures += 1
            result.failures.append(f"{docs[0]['_id']}: too large for the target")
            result.refused.append(
                {"id": docs[0]["_id"], "error": "too_large", "reason": "too large for the target"}
            )
            return
        half = len(docs) // 2
        _write(target, docs[:half], result)
        _write(target, docs[half:], result)
        return
    refused = {"forbidden", "unauthorized"}
    failed = [e for e in errors if e.get("error") not in refused]
    result.denied += len(errors) - len(failed)
    result.refused.extend(
        {"id": str(e.get("id")), "error": str(e.get("error")), "reason": str(e.get("reason", ""))}
        for e in errors
        if e.get("error") in refused
    )
    result.docs_written += len(docs) - len(errors)
    if failed:
        result.doc_write_failures += len(failed)
        result.failures.extend(f"{e.get('id')}: {e.get('error')} {e.get('reason')}" for e in failed)
        raise ReplicationFailed(f"target did not store {len(failed)} document(s): {failed[:3]}")


class _Checkpoints:
    """Step 3 and 9: the replication log kept as ``_local/<id>`` on both sides."""

    def __init__(self, rep: Replication, rep_id: str) -> None:
        self.rep = rep
        self.local_id = f"_local/{rep_id}"
        self.source_log = _read_checkpoint(rep.source, self.local_id)
        self.target_log = _read_checkpoint(rep.target, self.local_id)
        self.source_writable = True

    def start_seq(self) -> Seq:
        """The newest sequence both sides agree they reached; 0 if none."""
        source, target = self.source_log, self.target_log
        if not source or not target:
            return 0
        if source.get("session_id") == target.get("session_id"):
            return source.get("source_last_seq", 0)
        target_sessions = {h["session_id"] for h in target.get("history", [])}
        for entry in source.get("history", []):
            if entry["session_id"] in target_sessions:
                return entry.get("recorded_seq", 0)
        return 0

    def record(self, result: ReplicationResult, seq: Seq) -> None:
        """Record ``seq`` on the target, then on the source, unless nothing moved (pouchdb#5379).

        A source that refuses (4xx) is read-only: the run goes on and later records skip it.
        """
        if result.last_seq == seq and (self.target_log or {}).get("source_last_seq") == seq:
            return
        result.last_seq = seq
        entry = {
            "session_id": result.session_id,
            "recorded_seq": seq,
            "end_time": datetime.now(UTC).isoformat(timespec="seconds"),
            "docs_written": result.docs_written,
            "docs_read": result.docs_read,
        }
        self.target_log = _save_log(self.rep.target, self.local_id, self.target_log, entry)
        if self.source_writable:
            try:
                self.source_log = _save_log(self.rep.source, self.local_id, self.source_log, entry)
            except (CouchRejected, CouchConflict, DocNotFound) as exc:
                log.info("source %s takes no checkpoints: %s", self.rep.source.name, exc)
                self.source_writable = False


def _save_log(db: Database, local_id: str, previous: Doc | None, entry: dict[str, Any]) -> Doc:
    history = [
        h for h in (previous or {}).get("history", []) if h["session_id"] != entry["session_id"]
    ]
    doc: Doc = {
        "_id": local_id,
        "session_id": entry["session_id"],
        "source_last_seq": entry["recorded_seq"],
        "replication_id_version": 1,
        "replicator": "sanji",
        "history": [entry, *history][:HISTORY],
    }
    if previous is not None:
        doc["_rev"] = previous["_rev"]
    try:
        doc["_rev"] = db.put_local(doc)
    except CouchConflict:
        # Our previous write landed but its answer was lost (the client resent it), or another
        # run of this replication wrote meanwhile: the log is ours alone, so take the current rev.
        current = db.get_local(local_id)
        doc.pop("_rev", None)
        if current is not None:
            doc["_rev"] = current["_rev"]
        doc["_rev"] = db.put_local(doc)
    return doc


def replicate_until_done(
    rep: Replication,
    progress: Callable[[ReplicationResult], None] | None = None,
    *,
    attempts: int = 8,
    first_delay: float = 1.0,
    max_delay: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplicationResult:
    """Run ``replicate``, retrying network failures with jittered exponential backoff.

    Each retry resumes from the last checkpoint. Refusals (401/403) are not retried.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return replicate(rep, progress)
        except (CouchUnavailable, ReplicationFailed) as exc:
            if attempt == attempts:
                raise
            pause = random.uniform(0, delay)
            log.warning(
                "replication attempt %d failed (%s); retrying in %.1fs", attempt, exc, pause
            )
            sleep(pause)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")
