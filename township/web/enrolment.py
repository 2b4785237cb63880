"""Kiosk enrolment (DESIGN.md "Kiosk enrolment"): a one-time code for CouchDB credentials.

The district issues a code per kiosk registration and publishes only its Argon2 hash in the
``kiosk_registration`` document of ``directory``, which replicates to the township. The kiosk
presents ``{village, code, instance}`` here; this node checks the code against that village's
registrations, then ``sync.topology.enrol_kiosk`` creates the PC's CouchDB user and writes the
``enrolment`` document that travels up, so the district knows the code is spent.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import couchdb
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import post
from litestar.datastructures import State
from litestar.params import JSONBody

from core.cases import Origin
from core.enrolment_codes import normalise_code
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.hierarchy import Level, level_of, township_of
from sync.couch import connect, couch_errors, get_document
from sync.errors import DocNotFound
from sync.topology import EnrolmentRefused, TopologyError, enrol_kiosk, village_database
from township.errors import EnrolmentDenied, NodeNotReady, TooManyAttempts
from township.settings import TownshipSettings

__all__ = [
    "EnrolRequest",
    "EnrolmentRead",
    "AttemptLimiter",
    "KioskEnrolment",
    "handlers",
]

log = logging.getLogger(__name__)

"""The district's code alphabet (no 0/O, 1/I); a copy, since the apps share no code."""

WRONG_CODE = "启用码不正确, 请核对后重新输入 (启用码由区政务服务管理部门发放)"
REVOKED = (
    "该终端已被吊销, 不能再启用; 本机已有的数据不会被删除。"
    "如需继续使用, 请联系区政务服务管理部门重新登记"
)
EXPIRED = "启用码已过期, 请联系区政务服务管理部门重新发放"
USED = "该启用码已被另一台电脑使用; 更换电脑请向区政务服务管理部门申请新的启用码"


class EnrolRequest(msgspec.Struct):
    """What a kiosk presents: its village, the one-time code and its own instance id."""

    village: str
    code: str
    instance: str


class EnrolmentRead(msgspec.Struct):
    """The credentials an enrolled kiosk replicates ``database`` at ``couch_url`` with."""

    username: str
    password: str
    database: str
    couch_url: str
    registration: str
    instance: str
    village: str
    township: str


class AttemptLimiter:
    """Wrong codes per key within a sliding window; in memory, so per process and reset on
    restart (enough to stop guessing a 60-bit code online)."""

    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def check(self, key: str) -> None:
        """Raise TooManyAttempts while ``key`` has used up its failures."""
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if len(times) >= self.max_failures:
                retry = max(1, int(times[0] + self.window - now + 0.999))
                raise TooManyAttempts(
                    f"启用码错误次数过多, 请 {(retry + 59) // 60} 分钟后再试", retry
                )

    def fail(self, key: str) -> None:
        """Count one wrong code for ``key``."""
        with self._lock:
            now = self.clock()
            self._recent(key, now).append(now)

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (after a successful enrolment)."""
        with self._lock:
            self._failures.pop(key, None)


_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when a village has no registration, so timing reveals nothing."""
    return _hasher.hash("no-registration-here")


def _matches(code_hash: Any, code: str) -> bool:
    try:
        return isinstance(code_hash, str) and _hasher.verify(code_hash, code)
    except (VerificationError, InvalidHashError):
        return False


def _expired(registration: dict[str, Any], now: datetime) -> bool:
    """True once ``expires_at`` has passed; a missing or unreadable date counts as expired."""
    try:
        expires = datetime.fromisoformat(str(registration.get("expires_at")))
    except ValueError:
        return True
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return expires <= now


def _checked_request(data: EnrolRequest, node: str) -> tuple[str, str, str]:
    """(village, code, instance) checked and normalised, or InvalidInput naming every fault;
    ``node``: this node's code, a valid unit to check the instance id with."""
    errors: list[FieldError] = []
    village = data.village.strip()
    try:
        if level_of(village) is not Level.VILLAGE:
            errors.append(FieldError("village", "请填写村(社区)的12位区划代码", "not a village"))
    except InvalidInput as exc:
        errors += [FieldError("village", e.message, e.message_en) for e in exc.errors]
    code = ""
    try:
        code = normalise_code(data.code)
    except InvalidInput as exc:
        errors += exc.errors
    instance = data.instance.strip()
    try:
        Origin(node, instance)
    except ValueError:
        errors.append(
            FieldError("instance", "终端实例编号应为4至16位小写字母或数字", "instance id format")
        )
    if errors:
        raise InvalidInput(errors)
    return village, code, instance


@contextlib.contextmanager
def _set_up() -> Iterator[None]:
    """CouchDB errors as SyncError kinds; a missing database means the node is not set up."""
    try:
        with couch_errors(every_status=True):
            yield
    except DocNotFound as exc:
        raise NodeNotReady(
            "本镇街节点的 CouchDB 尚未建立: 请管理员执行 sanji township setup 后重试"
        ) from exc


class KioskEnrolment:
    """The enrolment service of one township node."""

    def __init__(
        self,
        settings: TownshipSettings,
        limiter: AttemptLimiter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.limiter = limiter or AttemptLimiter(
            settings.enrol_max_failures, settings.enrol_window_seconds
        )
        self.clock = clock
        self._lock = threading.Lock()  # one enrolment at a time: check and write stay together

    def server(self) -> couchdb.Server:
        """This township's CouchDB, as admin, with socket timeouts."""
        return connect(self.settings.couchdb_url, timeout=self.settings.couch_timeout)

    def _registrations(self, couch: couchdb.Server, village: str) -> list[dict[str, Any]]:
        """The replicated registrations of ``village``; NotFound if the village is unknown."""
        with _set_up():
            directory = couch["directory"]
            unit = get_document(directory, f"unit:{village}")
            rows = directory.view(
                "_all_docs",
                startkey="kiosk_registration:",
                endkey="kiosk_registration:\ufff0",
                include_docs=True,
            )
            docs = [dict(row.doc) for row in rows if row.doc is not None]
        if unit is None or unit.get("type") != "unit":
            raise NotFound(
                "村",
                village,
                f"本镇街的目录中没有村 {village}: 请核对区划代码, 或等区里的目录同步过来",
            )
        return [
            d for d in docs if d.get("type") == "kiosk_registration" and d.get("village") == village
        ]

    def _match(self, registrations: list[dict[str, Any]], code: str) -> dict[str, Any] | None:
        """The registration whose hashed code ``code`` is, if any."""
        if not registrations:
            _matches(_dummy_hash(), code)
        for registration in registrations:
            if _matches(registration.get("code_hash"), code):
                return registration
        return None

    def enrol(self, data: EnrolRequest) -> EnrolmentRead:
        """Check the code against the village's registrations and enrol the PC."""
        village, code, instance = _checked_request(data, self.settings.code)
        township = self.settings.code
        if township_of(village) != township:
            raise NotFound(
                "村", village, f"村 {village} 不属于本镇街 ({township}), 请向所属镇街的节点注册"
            )
        self.limiter.check(village)
        couch = self.server()
        registration = self._match(self._registrations(couch, village), code)
        if registration is None:
            self.limiter.fail(village)
            log.warning("wrong enrolment code for village %s", village)
            raise EnrolmentDenied(WRONG_CODE, "wrong_code")
        reg_id = str(registration.get("registration") or registration["_id"].partition(":")[2])
        if registration.get("revoked"):
            raise EnrolmentDenied(REVOKED, "revoked")
        with self._lock:
            with _set_up():
                enrolment = get_document(couch["township"], f"enrolment:{reg_id}")
            if enrolment is not None and enrolment.get("instance") != instance:
                raise Conflict(USED)
            # Expiry ends an unused code; the PC it enrolled may always ask for a new password.
            if enrolment is None and _expired(registration, self.clock()):
                raise EnrolmentDenied(EXPIRED, "expired")
            try:
                credentials = enrol_kiosk(couch, village, reg_id, instance, now=self.clock())
            except EnrolmentRefused as exc:  # the directory changed since the check above
                log.warning("enrolment of %s refused: %s", reg_id, exc)
                raise Conflict(USED) from exc
            except TopologyError as exc:
                raise NodeNotReady(
                    f"本镇街节点还没有 {village_database(village)} 数据库: "
                    "请管理员执行 sanji township setup 后重试"
                ) from exc
        self.limiter.clear(village)
        log.info("kiosk %s enrolled for village %s (%s)", instance, village, reg_id)
        return EnrolmentRead(
            username=credentials.username,
            password=credentials.password,
            database=credentials.database,
            couch_url=self.settings.public_couch_url,
            registration=reg_id,
            instance=instance,
            village=village,
            township=township,
        )


@post("/api/v1/kiosk/enrol", status_code=200, sync_to_thread=True)
def enrol(data: JSONBody[EnrolRequest], state: State) -> EnrolmentRead:
    """Enrol a kiosk PC with its one-time code; answer its CouchDB credentials."""
    service: KioskEnrolment = state.enrolment
    return service.enrol(data)


handlers = [enrol]
