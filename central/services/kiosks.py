"""Kiosk registrations: one-time enrolment codes for village kiosks, their status and revocation."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db.models import KioskRegistration
from central.services.directory import publish_registration
from central.services.hierarchy import get_unit
from central.services.passwords import hash_secret
from core.enrolment_codes import new_code
from core.errors import Conflict, FieldError, InvalidInput, NotFound

__all__ = ["KioskView", "issue_code", "list_kiosks", "revoke"]


@dataclass(frozen=True)
class KioskView:
    """A registration as the administrator sees it, with what the enrolment documents say."""

    registration: KioskRegistration
    status: str
    enrolled_at: str | None

    @property
    def status_label(self) -> str:
        """Chinese status."""
        return {
            "pending": "待启用",
            "enrolled": "已启用",
            "revoked": "已吊销",
            "expired": "已过期",
        }[self.status]


def issue_code(
    session: Session, village_code: str, label: str, issued_by: str, days: int
) -> tuple[KioskRegistration, str]:
    """Register a village's kiosk; returns the registration and its one-time code (shown once)."""
    unit = get_unit(session, village_code)
    if unit.level != "village":
        raise InvalidInput(
            FieldError("village_code", "只能为村(社区)登记服务站终端", "kiosks belong to villages")
        )
    if len(label) > 60:
        raise InvalidInput(FieldError("label", "备注不能超过60字", "label too long"))
    code = new_code()
    now = datetime.now(UTC)
    reg = KioskRegistration(
        id=f"{village_code}-{secrets.token_hex(4)}",
        village_code=village_code,
        label=label.strip(),
        code_hash=hash_secret(code),
        issued_by=issued_by,
        issued_at=now,
        expires_at=now + timedelta(days=days),
        revoked_at=None,
        revoked_reason="",
    )
    session.add(reg)
    session.flush()
    publish_registration(session, reg)
    session.commit()
    return reg, code


def list_kiosks(
    session: Session,
    enrolments: Mapping[str, Mapping[str, Any]],
    village: str = "",
    status: str = "",
    now: datetime | None = None,
) -> list[KioskView]:
    """Registrations with their status; ``enrolments`` maps registration id to enrolment doc."""
    now = now or datetime.now(UTC)
    stmt = select(KioskRegistration).order_by(
        KioskRegistration.village_code, KioskRegistration.issued_at
    )
    if village:
        stmt = stmt.where(KioskRegistration.village_code.like(f"{village.strip()}%"))
    views = [_view(reg, enrolments.get(reg.id), now) for reg in session.scalars(stmt).all()]
    return [v for v in views if not status or v.status == status]


def _view(reg: KioskRegistration, enrolment: Mapping[str, Any] | None, now: datetime) -> KioskView:
    expires = reg.expires_at if reg.expires_at.tzinfo else reg.expires_at.replace(tzinfo=UTC)
    if reg.revoked_at is not None:
        status = "revoked"
    elif enrolment is not None:
        status = "enrolled"
    elif expires < now:
        status = "expired"
    else:
        status = "pending"
    return KioskView(reg, status, enrolment.get("enrolled_at") if enrolment else None)


def revoke(session: Session, registration_id: str, reason: str) -> KioskRegistration:
    """Revoke a kiosk (a stolen or retired PC); townships delete its user when this reaches them."""
    reg = session.get(KioskRegistration, registration_id)
    if reg is None:
        raise NotFound("终端登记", registration_id)
    if reg.revoked_at is not None:
        raise Conflict("该终端已吊销")
    if not reason.strip():
        raise InvalidInput(FieldError("reason", "请填写吊销原因", "a reason is required"))
    reg.revoked_at = datetime.now(UTC)
    reg.revoked_reason = reason.strip()[:200]
    publish_registration(session, reg)
    session.commit()
    return reg
