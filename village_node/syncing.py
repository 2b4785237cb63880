"""Sync with the village database: push then pull, and the state the page header shows."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sync.errors import CouchRejected, CouchUnavailable, DocNotFound, SyncError
from sync.remote import RemoteDatabase
from sync.replicator import Replication, replicate
from sync.store import SQLiteStore
from village_node.settings import Settings, load_enrolment

__all__ = ["SyncState", "Syncer", "UPWARD_PREFIXES", "STATE_LOCAL"]

log = logging.getLogger(__name__)

STATE_LOCAL = "_local/kiosk_sync"
"""Where the store keeps the sync state, so a restart shows the last sync at once."""
UPWARD_PREFIXES = ("case:", "case_event:", "kiosk_status:")
"""What the kiosk writes and pushes up; other documents only come down."""
BATCH_SIZE = 500

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

    @property
    def revoked(self) -> bool:
        """The township refused our credentials at the last attempt."""
        return self.error_kind == REVOKED


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        since = (state or self.state()).pushed_seq
        page = self.store.changes(since=since)
        return sum(1 for row in page["results"] if row["id"].startswith(UPWARD_PREFIXES))

    def run(self) -> SyncState | None:
        """Push, then pull; None if a sync was already running."""
        if not self._running.acquire(blocking=False):
            return None
        try:
            return self._run()
        finally:
            self._running.release()

    def _run(self) -> SyncState:
        state = self.state()
        state.last_attempt = _now()
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
            push = replicate(up)
            pull = replicate(Replication(remote, self.store, batch_size=BATCH_SIZE))
            # Once more up: what just came down is found on the township (nothing sent), so
            # the checkpoint moves past it and "waiting" counts only what is really ours.
            again = replicate(up)
            state.pushed_seq = _seq_number(again.last_seq)
        except CouchRejected as exc:
            state.online, state.error_kind = True, REVOKED
            state.last_error = (
                "镇街服务中心拒绝了本终端的账号 (可能已被吊销)。本机数据都已保留; "
                "请联系区级管理员重新发放启用码后重新启用。"
            )
            log.warning("sync refused: %s", exc)
        except (CouchUnavailable, OSError) as exc:
            state.online, state.error_kind = False, OFFLINE
            state.last_error = "无法连接镇街服务中心 (离线)。数据都保存在本机, 联网后会自动同步。"
            log.info("sync: offline: %s", exc)
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
        self._save(state)
        return state
