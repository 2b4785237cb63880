"""The kiosk fleet (issue 8 item 5): every enrolled kiosk with what its last status said.

Read from the district read model: ``fleet_enrolments`` and ``fleet_statuses`` (projected from
the `district` database) beside the SQL truth of registrations and units.

How the clock skew is measured. A kiosk rewrites its ``kiosk_status`` document, with ``clock`` =
its own wall time, immediately before every push, so each revision leaves the kiosk seconds after
``clock``; the township's and the district's replications are continuous. The district's
projection stamps ``seen_at`` (district server time) when it first reads a revision, and the skew
is ``clock − seen_at``. A clock *ahead* is therefore measured exactly (transit only makes it
look less ahead); a clock *behind* by more than the tolerance may also be a revision that took
long to arrive (a township cut off from the district), so the page says "慢或延迟到达".

A kiosk is *silent* when the district has heard nothing from it (no new status revision, else its
enrolment) for longer than the configured hours — measured on the district's clock, not the
kiosk's.

A kiosk is *failing* when its last completed sync attempt failed while its pushes still get
through. What the district holds is always the revision written at the start of an attempt,
before its push (``village_node.syncing``): ``last_attempt`` is that attempt, ``last_success``
the last attempt that succeeded, and ``error_kind`` / ``last_error`` the outcome of the attempt
before (the outcome of an attempt is written after it and goes up with the next push). So a
revision with an error and ``last_attempt`` after ``last_success`` says: the previous attempt
failed. Its arrival also proves that this attempt's push reached the township, so an ``offline``
or ``revoked`` outcome is already over (a kiosk that stays offline or refused sends nothing and
shows as silent); an ``error`` (a pull or a push that broke off with a replication error) can
repeat at every attempt while the pushes go through, and is what *failing* means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db.models import FleetEnrolment, FleetStatus, KioskRegistration, Unit
from central.services.publish import latest_version

__all__ = ["FleetFilter", "FleetKiosk", "STATES", "fleet"]

STATES = {
    "silent": "长时间未联系",
    "failing": "同步失败",
    "skewed": "时钟偏差",
    "stale": "目录版本落后",
    "refused": "有被拒文档",
    "waiting": "有待上传",
    "revoked": "已吊销",
}
"""The fleet page's state filter: value → Chinese label."""

OVER_ON_ARRIVAL = frozenset({"offline", "revoked"})
"""Error kinds a status revision cannot still be suffering when it reaches the district: its
push got through (see the module's docstring)."""


@dataclass(frozen=True)
class FleetFilter:
    """What the fleet page asks for."""

    township: str = ""
    village: str = ""
    q: str = ""
    """Text in the registration id, instance, village or township name or code."""
    state: str = ""
    """One of ``STATES`` or empty."""
    silent_hours: float = 24.0
    skew_minutes: int = 15


@dataclass(frozen=True)
class FleetKiosk:
    """One enrolled kiosk PC as supervision sees it."""

    registration: str
    village: str
    village_name: str
    township: str
    township_name: str
    label: str
    instance: str
    enrolled_at: datetime | None
    revoked: bool
    revoked_reason: str
    has_status: bool
    online: bool | None
    last_success: datetime | None
    last_attempt: datetime | None
    error_kind: str
    last_error: str
    waiting: int
    refused: int
    catalogue_version: int | None
    current_version: int | None
    clock: datetime | None
    seen_at: datetime | None
    skew_seconds: int | None
    skewed: bool
    last_heard: datetime | None
    silent: bool
    app_version: str

    @property
    def stale(self) -> bool:
        """Holds an older catalogue than the newest published one (or none at all)."""
        return self.current_version is not None and (
            self.catalogue_version is None or self.catalogue_version < self.current_version
        )

    @property
    def skew_text(self) -> str:
        """The skew in Chinese: 快/慢 and minutes, empty when not measured."""
        if self.skew_seconds is None:
            return ""
        minutes = abs(self.skew_seconds) / 60
        amount = f"{minutes:.0f}分钟" if minutes < 120 else f"{minutes / 60:.1f}小时"
        if not self.skewed:
            return f"正常 ({'+' if self.skew_seconds >= 0 else '-'}{amount})"
        return f"快 {amount}" if self.skew_seconds > 0 else f"慢或延迟到达 {amount}"

    @property
    def failing(self) -> bool:
        """Its last completed sync attempt failed with an error that outlives the push (see the
        module's docstring); never for a revoked kiosk."""
        if self.revoked or not self.error_kind or self.error_kind in OVER_ON_ARRIVAL:
            return False
        if self.last_success is None:
            return True
        return self.last_attempt is not None and self.last_attempt > self.last_success

    def matches(self, state: str) -> bool:
        """Whether the kiosk is in one of ``STATES`` (any state for an empty one)."""
        return {
            "": True,
            "silent": self.silent,
            "failing": self.failing,
            "skewed": self.skewed,
            "stale": self.stale,
            "refused": self.refused > 0,
            "waiting": self.waiting > 0,
            "revoked": self.revoked,
        }.get(state, True)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fleet(session: Session, wanted: FleetFilter, now: datetime | None = None) -> list[FleetKiosk]:
    """Every enrolled kiosk (a registration with an enrolment or a status), by township and
    village, with the filters of ``wanted`` applied."""
    now = now or datetime.now(UTC)
    current = latest_version(session)
    current_version = current.version if current is not None else None
    units = {u.code: u.name for u in session.execute(select(Unit.code, Unit.name)).all()}
    registrations = {r.id: r for r in session.scalars(select(KioskRegistration)).all()}
    enrolments = {e.registration: e for e in session.scalars(select(FleetEnrolment)).all()}
    statuses: dict[str, FleetStatus] = {}
    for latest in session.scalars(select(FleetStatus).order_by(FleetStatus.seen_at)).all():
        statuses[latest.registration] = latest  # the newest revision seen wins
    silent_after = timedelta(hours=wanted.silent_hours)
    skew_limit = wanted.skew_minutes * 60
    kiosks: list[FleetKiosk] = []
    for reg_id in sorted(set(enrolments) | set(statuses)):
        enrolment, status = enrolments.get(reg_id), statuses.get(reg_id)
        reg = registrations.get(reg_id)
        village = (enrolment.village if enrolment else "") or (status.village if status else "")
        township = (enrolment.township if enrolment else "") or (status.township if status else "")
        seen_at = _aware(status.seen_at) if status else None
        enrolled_at = _aware(enrolment.enrolled_at) if enrolment else None
        last_heard = max((t for t in (seen_at, enrolled_at) if t is not None), default=None)
        revoked = reg is not None and reg.revoked_at is not None
        skew = status.skew_seconds if status else None
        kiosks.append(
            FleetKiosk(
                registration=reg_id,
                village=village,
                village_name=units.get(village, village),
                township=township,
                township_name=units.get(township, township),
                label=reg.label if reg is not None else "",
                instance=(enrolment.instance if enrolment else "")
                or (status.instance if status else ""),
                enrolled_at=enrolled_at,
                revoked=revoked,
                revoked_reason=reg.revoked_reason if reg is not None else "",
                has_status=status is not None,
                online=status.online if status else None,
                last_success=_aware(status.last_success) if status else None,
                last_attempt=_aware(status.last_attempt) if status else None,
                error_kind=status.error_kind if status else "",
                last_error=status.last_error if status else "",
                waiting=status.waiting if status else 0,
                refused=status.refused if status else 0,
                catalogue_version=status.catalogue_version if status else None,
                current_version=current_version,
                clock=_aware(status.clock) if status else None,
                seen_at=seen_at,
                skew_seconds=skew,
                skewed=skew is not None and abs(skew) > skew_limit,
                last_heard=last_heard,
                silent=not revoked and (last_heard is None or now - last_heard > silent_after),
                app_version=status.app_version if status else "",
            )
        )
    return [k for k in kiosks if _wanted(k, wanted)]


def _wanted(kiosk: FleetKiosk, wanted: FleetFilter) -> bool:
    if wanted.township and kiosk.township != wanted.township:
        return False
    if wanted.village and not kiosk.village.startswith(wanted.village.strip()):
        return False
    text = wanted.q.strip()
    if text and not any(
        text in field
        for field in (
            kiosk.registration,
            kiosk.instance,
            kiosk.village,
            kiosk.village_name,
            kiosk.township_name,
            kiosk.label,
        )
    ):
        return False
    return kiosk.matches(wanted.state)
