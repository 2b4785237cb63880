"""Sync with the village database: push then pull, and the state the page header shows."""

from __future__ import annotations

import asyncio
import http.client
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from sync.errors import CouchRejected, CouchUnavailable, DocNotFound, SyncError
from sync.remote import RemoteDatabase
from sync.replicator import Replication, ReplicationResult, replicate
from sync.store import SQLiteStore
from village_node.catalogue import KioskCatalogue
from village_node.settings import Enrolment, Settings, load_enrolment

__all__ = [
    "Progress",
    "SyncState",
    "Syncer",
    "UPWARD_PREFIXES",
    "WAITING_PREFIXES",
    "STATE_LOCAL",
    "status_id",
    "background_sync",
]

log = logging.getLogger(__name__)

STATE_LOCAL = "_local/kiosk_sync"
"""Where the store keeps the sync state, so a restart shows the last sync at once."""
UPWARD_PREFIXES = ("case:", "case_event:", "kiosk_status:")
"""What the kiosk writes and pushes up; other documents only come down."""
WAITING_PREFIXES = ("case:", "case_event:")
"""What "待上传" counts: the kiosk's own status document is rewritten after every attempt and
goes up with the next push, so counting it would never let the count reach 0."""
BATCH_SIZE = 500
RETRY_FIRST = 15.0
"""Seconds before the first retry after a network failure; doubled each time."""
RETRY_MAX = 600.0
"""The longest pause between retries (or the sync interval, if shorter)."""
PROBE_EVERY = 5.0
"""While offline, how often the background task checks cheaply whether the link is back."""
PROBE_TIMEOUT = 3.0

REFUSED_KEPT = 50
"""Refused documents remembered for the agent (the newest)."""

OFFLINE_MESSAGE = "无法连接镇街服务中心 (离线)。数据都保存在本机, 联网后会自动同步。"

REVOKED = "revoked"
OFFLINE = "offline"
ERROR = "error"


@dataclass
class SyncState:
    """The last sync's outcome, kept in the store."""

    online: bool | None = None
    last_success: str = ""
    last_attempt: str = ""
    last_error: str = ""
    error_kind: str = ""
    pushed_seq: int = 0
    pulled: int = 0
    pushed: int = 0
    failures: int = 0
    """Network failures in a row (0 after a sync that reached the township)."""
    retry_delay: float = 0.0
    """The nominal pause before the next automatic retry (doubles each failure)."""
    retry_at: float = 0.0
    """When (epoch seconds, jittered) the background task retries; 0 when not offline."""
    refused: list[dict[str, str]] = field(default_factory=list)
    """Documents the township refused (``id``, ``reason``, ``at``), newest first, until the
    agent has seen them: they stay on this PC but will not go up as they are."""

    def retry_in(self, now: float | None = None) -> int:
        """Whole seconds until the next automatic retry (0 if none is planned or it is due)."""
        if self.error_kind != OFFLINE or not self.retry_at:
            return 0
        return max(0, round(self.retry_at - (time.time() if now is None else now)))

    @property
    def link(self) -> str:
        """What the header says of the link: ``revoked``, ``online``, ``never`` or ``offline``."""
        if self.revoked:
            return "revoked"
        if self.online is None:
            return "never"
        return "online" if self.online else "offline"

    @property
    def link_label(self) -> str:
        """``link`` in Chinese."""
        return {"revoked": "已吊销", "online": "在线", "never": "未同步"}.get(self.link, "离线")

    @property
    def revoked(self) -> bool:
        """The township refused our credentials at the last attempt."""
        return self.error_kind == REVOKED


@dataclass(frozen=True)
class Progress:
    """How far the running sync is: its phase and the changes done of those it found."""

    phase: str = ""
    """``push`` (上传), ``pull`` (下载) or empty when no sync runs."""
    done: int = 0
    total: int = 0

    @property
    def percent(self) -> int:
        """Whole percent of the phase done (0 while the total is unknown)."""
        return min(100, round(100 * self.done / self.total)) if self.total > 0 else 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def status_id(enrolment: Enrolment) -> str:
    """``kiosk_status:<village>:<instance>``: one per PC, so a replaced PC has its own."""
    return f"kiosk_status:{enrolment.village}:{enrolment.instance}"


def _app_version() -> str:
    try:
        return metadata.version("sanji")
    except metadata.PackageNotFoundError:
        return "unknown"


def _seq_number(seq: Any) -> int:
    try:
        return int(str(seq).split("-", 1)[0])
    except ValueError:
        return 0


class Syncer:
    """Runs one sync at a time and remembers how it went."""

    def __init__(self, settings: Settings, store: SQLiteStore) -> None:
        self.settings = settings
        self.store = store
        self._running = threading.Lock()
        self._catalogue = KioskCatalogue(store)
        self.retry_first = RETRY_FIRST
        self.retry_max = min(RETRY_MAX, settings.sync_interval or RETRY_MAX)
        self.progress = Progress()

    @property
    def busy(self) -> bool:
        """A sync is running now."""
        return self._running.locked()

    def state(self) -> SyncState:
        """The stored state of the last sync."""
        doc = self.store.get_local(STATE_LOCAL) or {}
        known = SyncState.__dataclass_fields__
        return SyncState(**{k: v for k, v in doc.items() if k in known})

    def _save(self, state: SyncState) -> None:
        current = self.store.get_local(STATE_LOCAL) or {"_id": STATE_LOCAL}
        self.store.put_local({**current, **asdict(state)})

    def waiting(self, state: SyncState | None = None) -> int:
        """Documents written here since the last push that must still go up."""
        return self.store.count_changed((state or self.state()).pushed_seq, WAITING_PREFIXES)

    def write_status(self, state: SyncState | None = None) -> str | None:
        """Rewrite this kiosk's ``kiosk_status`` document (None while not enrolled).

        It goes up with the push like the cases, so the district sees its fleet. The state's
        times are kept as they are; ``clock`` is this PC's wall time now (a wrong clock shows).
        """
        enrolment = load_enrolment(self.settings)
        if enrolment is None:
            return None
        state = state or self.state()
        view = self._catalogue.current()
        doc_id = status_id(enrolment)
        doc: dict[str, Any] = {
            "_id": doc_id,
            "type": "kiosk_status",
            "village": enrolment.village,
            "township": enrolment.township,
            "instance": enrolment.instance,
            "registration": enrolment.registration,
            "online": state.online,
            "last_success": state.last_success,
            "last_attempt": state.last_attempt,
            "last_error": state.last_error,
            "error_kind": state.error_kind,
            "waiting": self.waiting(state),
            "refused": len(state.refused),
            "catalogue_version": view.version if view is not None else None,
            "clock": _now(),
            "app_version": _app_version(),
        }
        try:
            doc["_rev"] = self.store.get(doc_id)["_rev"]
        except DocNotFound:
            pass
        return self.store.put(doc)

    def write_status_safely(self, state: SyncState | None = None) -> None:
        """``write_status``, logging instead of raising."""
        try:
            self.write_status(state)
        except Exception:  # the status is a report: it must never break a sync
            log.exception("could not write the kiosk status")

    def probe(self, timeout: float = PROBE_TIMEOUT) -> bool:
        """Whether the township's CouchDB answers at all (a cheap ``GET /``, no credentials)."""
        enrolment = load_enrolment(self.settings)
        if enrolment is None:
            return False
        parts = urlsplit(enrolment.couch_url)
        factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = factory(parts.hostname or "localhost", parts.port, timeout=timeout)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def next_wait(self, now: float | None = None) -> float | None:
        """Seconds until the background task should sync (None: no automatic sync now)."""
        if load_enrolment(self.settings) is None or self.settings.sync_interval <= 0:
            return None
        state = self.state()
        if state.revoked:
            return None  # until the agent presses 同步 or re-enrols
        now = time.time() if now is None else now
        if state.error_kind == OFFLINE and state.retry_at:
            return max(0.0, state.retry_at - now)
        if not state.last_attempt:
            return 0.0
        try:
            last = datetime.fromisoformat(state.last_attempt).timestamp()
        except ValueError:
            return 0.0
        return max(0.0, last + self.settings.sync_interval - now)

    def run(self) -> SyncState | None:
        """Push, then pull; None if a sync was already running."""
        if not self._running.acquire(blocking=False):
            return None
        try:
            return self._run()
        finally:
            self.progress = Progress()
            self._running.release()

    def start(self) -> bool:
        """Run a sync in a thread of its own (``progress`` tells how far it is); False if one
        is already running."""
        if not self._running.acquire(blocking=False):
            return False

        def work() -> None:
            try:
                self._run()
            except Exception:  # a thread's exception would otherwise vanish
                log.exception("sync failed")
            finally:
                self.progress = Progress()
                self._running.release()

        threading.Thread(target=work, name="kiosk-sync", daemon=True).start()
        return True

    def _replicate(self, phase: str, rep: Replication) -> ReplicationResult:
        """One replication, reporting its progress as changes done of those found at start."""
        self.progress = Progress(phase)
        end = _seq_number(rep.source.info().get("update_seq"))

        def report(result: ReplicationResult) -> None:
            start = _seq_number(result.start_seq)
            done = _seq_number(result.last_seq) - start
            self.progress = Progress(phase, max(0, done), max(done, end - start, 0))

        return replicate(rep, progress=report)

    def check_link(self) -> bool:
        """Whether the township answers right now; if not, the kiosk shows offline at once and
        the background task retries as after a failed sync."""
        if self.probe():
            return True
        state = self.state()
        if state.error_kind not in (OFFLINE, REVOKED):
            state.online, state.error_kind, state.last_error = False, OFFLINE, OFFLINE_MESSAGE
            self._plan_retry(state)
            self._save(state)
        return False

    def forget_refused(self) -> None:
        """The agent has seen the refused documents: stop showing them."""
        state = self.state()
        state.refused = []
        self._save(state)

    def _note_refused(self, state: SyncState, result: ReplicationResult) -> None:
        when = _now()
        new = [
            {"id": r["id"], "reason": r.get("reason") or r.get("error", ""), "at": when}
            for r in result.refused
        ]
        if new:
            log.warning("the township refused %d document(s): %s", len(new), new[:3])
            state.refused = (new + state.refused)[:REFUSED_KEPT]

    def _run(self) -> SyncState:
        state = self.state()
        state.last_attempt = _now()
        # Written before the push so it goes up in this push (with the previous outcome).
        self.write_status_safely(state)
        enrolment = load_enrolment(self.settings)
        if enrolment is None:
            state.error_kind, state.last_error = ERROR, "本终端尚未启用"
            self._save(state)
            return state
        remote = RemoteDatabase(
            enrolment.database_url(), enrolment.database, timeout=self.settings.couch_timeout
        )
        try:
            up = Replication(self.store, remote, batch_size=BATCH_SIZE)
            push = self._replicate("push", up)
            self._note_refused(state, push)  # checkpointed past: noted even if the rest fails
            pull = self._replicate("pull", Replication(remote, self.store, batch_size=BATCH_SIZE))
            # Once more up: what just came down is found on the township (nothing sent), so
            # the checkpoint moves past it and "waiting" counts only what is really ours.
            again = replicate(up)
            state.pushed_seq = _seq_number(again.last_seq)
            self._note_refused(state, again)
        except CouchRejected as exc:
            state.online, state.error_kind = True, REVOKED
            state.last_error = (
                "镇街服务中心拒绝了本终端的账号 (可能已被吊销)。本机数据都已保留; "
                "请联系区级管理员重新发放启用码后重新启用。"
            )
            log.warning("sync refused: %s", exc)
        except (CouchUnavailable, OSError) as exc:
            state.online, state.error_kind = False, OFFLINE
            state.last_error = OFFLINE_MESSAGE
            log.info("sync: offline: %s", exc)
            self._plan_retry(state)
        except DocNotFound as exc:
            state.online, state.error_kind = True, ERROR
            state.last_error = "镇街服务中心找不到本村(社区)的数据库, 请联系镇街管理员。"
            log.warning("sync: %s", exc)
        except SyncError as exc:
            state.online, state.error_kind = True, ERROR
            state.last_error = f"同步未完成, 稍后会自动重试 ({exc})"
            log.warning("sync failed: %s", exc)
        else:
            state.online, state.error_kind, state.last_error = True, "", ""
            state.last_success = state.last_attempt
            state.pushed = push.docs_written + again.docs_written
            state.pulled = pull.docs_written
        if state.error_kind != OFFLINE:
            state.failures, state.retry_delay, state.retry_at = 0, 0.0, 0.0
        self._save(state)
        # The outcome goes into the status document now and up with the next push.
        self.write_status_safely(state)
        return state

    def _plan_retry(self, state: SyncState) -> None:
        """The next retry: 15 s doubling up to the interval (at most 10 min), jittered."""
        state.failures += 1
        state.retry_delay = min(self.retry_first * 2 ** (state.failures - 1), self.retry_max)
        if self.settings.sync_interval > 0:  # else nothing retries by itself
            state.retry_at = time.time() + random.uniform(0.5, 1.0) * state.retry_delay


async def background_sync(
    syncer: Syncer,
    *,
    probe_every: float = PROBE_EVERY,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> None:
    """The kiosk's background sync, until cancelled.

    Syncs every ``sync_interval``; after a network failure it retries with jittered exponential
    backoff instead, and probes the link every few seconds meanwhile so a returning link is used
    at once. A refused (revoked) kiosk is not retried until the agent syncs by hand or re-enrols.
    """
    while True:
        wait = syncer.next_wait()
        if wait is None:
            await sleep(probe_every)
            continue
        if wait > 0:
            offline = syncer.state().error_kind == OFFLINE
            await sleep(min(wait, probe_every))  # short naps: a sync by hand changes the plan
            if not offline or not await asyncio.to_thread(syncer.probe):
                continue
            log.info("sync: the township answers again; syncing now")
        try:
            await asyncio.to_thread(syncer.run)
        except Exception:  # the loop must outlive one bad run
            log.exception("background sync failed")
