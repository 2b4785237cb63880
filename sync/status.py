"""``sanji sync status``: the state, lag and last error of a server's ``_replicator`` jobs.

**State.** CouchDB 3 reports each job at ``GET /_scheduler/docs/_replicator/<id>``
(``running``, ``pending``, ``crashing``, ``failed``, ``completed`` … with the error in
``info``). pouchdb-server has no ``_scheduler`` (nor ``_active_tasks``); its replicator daemon
writes into the document itself: ``_replication_state`` (``triggered`` while running,
``completed``, ``error``), ``_replication_state_reason`` on error, ``_replication_state_time``,
``_replication_id`` and ``_replication_stats`` when a one-shot job completes. A continuous
job there retries network errors forever and stays ``triggered``, so state alone says little:
each endpoint is also probed with the job's own credentials (``GET /<db>``) and the filter's
design document is looked up on the source. A refused or missing endpoint is failing.

**Lag** is computed the same way on both servers: the documents that pass the job's filter on
the source, changed after the job's last checkpoint, whose current revision the target lacks
(source ``_changes`` with the filter from that checkpoint, then the target's ``_revs_diff``).
The checkpoint is ``info.checkpointed_source_seq`` from CouchDB's scheduler, or on
pouchdb-server the ``last_seq`` of the job's ``_local`` checkpoint, whose id PouchDB derives
from both endpoints' ``uuid`` + database name, the filter and its query parameters
(pouchdb-generate-replication-id); without one the scan starts at 0. At most ``max_scan``
changes are looked at (then the lag is shown as ``≥ n``). Lag is what is still pending: it is
reported but does not count as failing.

A job checkpoints past documents its target refuses (``validate_doc_update``), and pouchdb-server
past updates it silently drops (see sync.design), so those are no lag. ``full=True`` (``sanji sync
status --full``) compares from sequence 0 instead and counts every filtered document whose
current revision the target lacks, refused ones included.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import couchdb
from couchdb import http as couch_http

from sync.couch import connect, couch_errors
from sync.database import Seq
from sync.errors import CouchRejected, CouchUnavailable, DocNotFound, SyncError
from sync.remote import RemoteDatabase

__all__ = ["ReplicationStatus", "replication_status", "format_status", "pouchdb_checkpoint_id"]

_FAILING_STATES = frozenset({"crashing", "failed", "error"})


@dataclass
class ReplicationStatus:
    """One ``_replicator`` job as ``sanji sync status`` shows it."""

    id: str
    source: str
    target: str
    state: str
    failing: bool
    lag: int | None = None
    lag_capped: bool = False
    checkpoint: Seq | None = None
    error: str = ""
    missing: list[str] = field(default_factory=list)
    """The first few ids of documents counted as lag."""

    @property
    def lag_text(self) -> str:
        """The lag for people: ``0``, ``12``, ``≥ 10000`` or ``?``."""
        if self.lag is None:
            return "?"
        return f"≥ {self.lag}" if self.lag_capped else str(self.lag)


def _split(endpoint: Any) -> tuple[str, str]:
    """(server URL with credentials, database name) of a replication endpoint."""
    if isinstance(endpoint, dict):
        url = str(endpoint.get("url", ""))
        basic = (endpoint.get("auth") or {}).get("basic") or {}
        if basic.get("username") and "@" not in urlsplit(url).netloc:
            parts = urlsplit(url)
            user = quote(str(basic["username"]), safe="")
            password = quote(str(basic.get("password", "")), safe="")
            url = urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))
    else:
        url = str(endpoint)
    parts = urlsplit(url)
    path, _, raw_name = parts.path.rstrip("/").rpartition("/")
    server = urlunsplit(parts._replace(path=path + "/", query="", fragment=""))
    return server, raw_name


def _shown(endpoint: Any) -> str:
    """``host:port/db`` of an endpoint, without credentials."""
    server, raw_name = _split(endpoint)
    parts = urlsplit(server)
    return f"{parts.hostname}:{parts.port}/{unquote(raw_name)}"


def pouchdb_checkpoint_id(
    source_uuid: str, source_db: str, target_uuid: str, target_db: str, doc: dict[str, Any]
) -> str:
    """The ``_local`` id PouchDB checkpoints a replication under (``*_db`` as in the URL)."""

    def encoded(raw: str) -> str:  # encodeURIComponent, unless already encoded
        return raw if "%" in raw else quote(raw, safe="-_.!~*'()")

    data = source_uuid + encoded(source_db) + target_uuid + encoded(target_db)
    if doc.get("filter"):
        data += str(doc["filter"])
        if doc.get("query_params"):
            params = dict(sorted(doc["query_params"].items()))
            data += json.dumps(params, separators=(",", ":"), ensure_ascii=False)
    if doc.get("doc_ids"):
        data += ",".join(sorted(doc["doc_ids"]))
    digest = base64.b64encode(hashlib.md5(data.encode("latin-1", "replace")).digest()).decode()
    return "_local/" + digest.replace("/", ".").replace("+", "_")


def _uuid(server_url: str, timeout: float) -> str:
    with couch_errors(every_status=True):
        root = connect(server_url, timeout).resource.get_json()[2]
    return str(root.get("uuid", ""))


def _error_text(exc: Exception) -> str:
    if isinstance(exc, CouchRejected):
        return f"{exc.status} {exc.error}: {exc.reason}"
    return str(exc) or type(exc).__name__


def _scheduler_state(server: couchdb.Server, doc_id: str) -> dict[str, Any] | None:
    """CouchDB 3's view of one job, or None if the server has no scheduler."""
    try:
        with couch_errors(every_status=True):
            _, _, body = server.resource.get_json(["_scheduler", "docs", "_replicator", doc_id])
    except (DocNotFound, SyncError):
        return None
    return dict(body)


_SHOWN_MISSING = 10


def _lag(
    source: RemoteDatabase,
    target: RemoteDatabase,
    doc: dict[str, Any],
    since: Seq,
    max_scan: int,
    status: ReplicationStatus,
) -> None:
    """Count the documents changed on the source after ``since`` (passing the filter) that the
    target lacks, looking at no more than ``max_scan`` changes, into ``status``."""
    missing = scanned = 0
    status.lag_capped = False
    while True:
        limit = min(500, max_scan - scanned)
        if limit <= 0:
            status.lag_capped = True
            break
        page = source.changes(
            since=since,
            limit=limit,
            filter=doc.get("filter"),
            query_params=doc.get("query_params") if doc.get("filter") else None,
            doc_ids=doc.get("doc_ids") if not doc.get("filter") else None,
        )
        rows = page["results"]
        scanned += len(rows)
        if rows:
            revs = {row["id"]: [c["rev"] for c in row["changes"]] for row in rows}
            lacking = target.revs_diff(revs)
            missing += len(lacking)
            room = max(_SHOWN_MISSING - len(status.missing), 0)
            status.missing.extend(sorted(lacking)[:room])
            since = rows[-1]["seq"]
        if len(rows) < limit:
            break
    status.lag = missing


def _one(
    server: couchdb.Server,
    doc: dict[str, Any],
    scheduler: bool,
    max_scan: int,
    timeout: float,
    full: bool,
) -> ReplicationStatus:
    """The status of one ``_replicator`` document."""
    status = ReplicationStatus(
        id=doc["_id"],
        source=_shown(doc.get("source", "")),
        target=_shown(doc.get("target", "")),
        state=str(doc.get("_replication_state") or "unknown"),
        failing=False,
        error=str(doc.get("_replication_state_reason") or ""),
    )
    if status.state == "triggered":
        status.state = "running"
    checkpoint: Seq | None = None
    if scheduler:
        job = _scheduler_state(server, doc["_id"])
        if job is not None:
            status.state = str(job.get("state") or status.state)
            info = job.get("info") or {}
            if isinstance(info, dict):
                status.error = str(info.get("error") or status.error)
                checkpoint = info.get("checkpointed_source_seq")
    status.failing = status.state in _FAILING_STATES

    source_server, source_name = _split(doc.get("source", ""))
    target_server, target_name = _split(doc.get("target", ""))
    source = RemoteDatabase(source_server, unquote(source_name), timeout=timeout)
    target = RemoteDatabase(target_server, unquote(target_name), timeout=timeout)
    for side, db in (("source", source), ("target", target)):
        try:
            db.info()
        except (SyncError, couch_http.HTTPError) as exc:
            status.failing = True
            status.error = f"{side} {db.name}: {_error_text(exc)}"
            return status
    try:
        if checkpoint is None and not scheduler:
            local_id = pouchdb_checkpoint_id(
                _uuid(source_server, timeout), source_name, _uuid(target_server, timeout),
                target_name, doc,
            )  # fmt: skip
            for db in (target, source):
                log = db.get_local(local_id)
                if log is not None:
                    checkpoint = log.get("last_seq")
                    break
        status.checkpoint = checkpoint
        since = 0 if full else checkpoint or 0
        _lag(source, target, doc, since, max_scan, status)
    except DocNotFound as exc:
        status.failing = True
        status.error = f"source {source.name}: {exc}"
    except (CouchRejected, CouchUnavailable, SyncError) as exc:
        status.failing = True
        status.error = _error_text(exc)
    return status


def replication_status(
    server_url: str, *, max_scan: int = 10_000, timeout: float = 10.0, full: bool = False
) -> list[ReplicationStatus]:
    """The status of every job in the server's ``_replicator`` database (admin URL); ``full``
    counts every document the target lacks, not only those after the checkpoint."""
    server = connect(server_url, timeout)
    with couch_errors(every_status=True):
        root = server.resource.get_json()[2]
        if "_replicator" not in server:
            return []
        rows = server["_replicator"].view("_all_docs", include_docs=True)
        docs = [dict(row.doc) for row in rows if row.doc and not row.id.startswith("_design/")]
    # Only CouchDB has the scheduler; an unknown path is not worth trying on pouchdb-server.
    scheduler = root.get("couchdb") == "Welcome"
    return [_one(server, doc, scheduler, max_scan, timeout, full) for doc in docs]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def format_status(rows: Sequence[ReplicationStatus]) -> str:
    """A readable table (Chinese headings with English) and a one-line verdict."""
    if not rows:
        return "没有复制任务 / no replications on this server (townships run them)"
    headings = [
        "复制 Replication",
        "源 Source",
        "目标 Target",
        "状态 State",
        "滞后 Lag",
        "错误 Error",
    ]
    table = [headings] + [
        [
            r.id,
            r.source,
            r.target,
            ("✗ " if r.failing else "") + r.state,
            r.lag_text,
            r.error[:120],
        ]
        for r in rows
    ]
    widths = [max(_width(row[i]) for row in table) for i in range(len(headings))]
    lines = ["  ".join(_pad(cell, w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in table]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        if r.missing:
            more = " …" if r.lag and r.lag > len(r.missing) else ""
            lines.append(f"{r.id} 目标缺少 / target lacks: {', '.join(r.missing)}{more}")
    failing = sum(r.failing for r in rows)
    lagging = sum(1 for r in rows if r.lag)
    lines.append("")
    if failing:
        lines.append(f"{failing} 个复制出错 / {failing} failing")
    else:
        lines.append(
            f"全部 {len(rows)} 个复制正常 / all {len(rows)} healthy"
            + (f" ({lagging} 个尚在追赶 / {lagging} catching up)" if lagging else "")
        )
    return "\n".join(lines)
