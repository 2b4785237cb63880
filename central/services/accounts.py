"""Accounts of district administrators, township staff and village agents, and logging in."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from central.db.models import Account, Unit
from central.services.directory import publish_account
from central.services.passwords import DUMMY_HASH, hash_secret, verify_secret
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.roles import Role, check_role_level, validate_password, validate_username

T = TypeVar("T")

__all__ = [
    "list_accounts",
    "create_account",
    "get_account",
    "set_disabled",
    "reset_password",
    "authenticate",
    "change_password",
]


def list_accounts(
    session: Session, q: str = "", role: str = "", unit: str = "", include_disabled: bool = True
) -> Sequence[Account]:
    """Accounts matching a search text (login or name), a role and a unit."""
    stmt = select(Account).order_by(Account.unit_code, Account.username)
    if q.strip():
        like = f"%{q.strip()}%"
        stmt = stmt.where(or_(Account.username.like(like), Account.display_name.like(like)))
    if role:
        stmt = stmt.where(Account.role == role)
    if unit:
        stmt = stmt.where(Account.unit_code == unit)
    if not include_disabled:
        stmt = stmt.where(Account.disabled.is_(False))
    return session.scalars(stmt).all()


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(FieldError("role", f"未知角色: {value}", "unknown role")) from None


def _collect(errors: list[FieldError], check: Callable[..., T], *args: Any) -> T | None:
    """Run one check; on InvalidInput keep its errors (so all faults are reported at once)."""
    try:
        return check(*args)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return None


def create_account(
    session: Session,
    username: str,
    display_name: str,
    role: str,
    unit_code: str,
    password: str,
    phone: str = "",
) -> Account:
    """Create an account bound to a unit of the level its role needs; every bad field is named."""
    errors: list[FieldError] = []
    login = _collect(errors, validate_username, username)
    role_value = _collect(errors, _role, role)
    _collect(errors, validate_password, password)
    if not display_name.strip() or len(display_name) > 60:
        errors.append(
            FieldError("display_name", "请填写姓名(不超过60字)", "name required, at most 60")
        )
    unit = session.get(Unit, unit_code.strip())
    if unit is None:
        errors.append(FieldError("unit_code", f"单位 {unit_code} 不存在", "unknown unit"))
    elif role_value is not None:
        _collect(errors, check_role_level, role_value, unit.level)
    if errors or login is None or role_value is None or unit is None:
        raise InvalidInput(errors)
    if session.get(Account, login) is not None:
        raise Conflict(f"登录名 {login} 已存在", "username")
    account = Account(
        username=login,
        display_name=display_name.strip(),
        role=role_value.value,
        unit_code=unit.code,
        password_hash=hash_secret(password),
        phone=phone.strip(),
        must_change_password=False,
        updated_at=datetime.now(UTC),
    )
    session.add(account)
    session.flush()
    publish_account(session, account)
    session.commit()
    return account


def get_account(session: Session, username: str) -> Account:
    """The account with ``username`` or NotFound."""
    account = session.get(Account, username)
    if account is None:
        raise NotFound("账号", username)
    return account


def set_disabled(session: Session, username: str, disabled: bool, acting: str = "") -> Account:
    """Disable or re-enable an account (never one's own); the change reaches every tier."""
    if disabled and username == acting:
        raise Conflict("不能停用自己的账号", "username")
    account = get_account(session, username)
    account.disabled = disabled
    account.updated_at = datetime.now(UTC)
    publish_account(session, account)
    session.commit()
    return account


def reset_password(session: Session, username: str) -> tuple[Account, str]:
    """Give an account a new random password that must be changed at next login."""
    account = get_account(session, username)
    password = secrets.token_urlsafe(9)
    account.password_hash = hash_secret(password)
    account.must_change_password = True
    account.updated_at = datetime.now(UTC)
    publish_account(session, account)
    session.commit()
    return account, password


def change_password(session: Session, username: str, old: str, new: str) -> Account:
    """Change one's own password after proving the old one."""
    account = get_account(session, username)
    if not verify_secret(account.password_hash, old):
        raise InvalidInput(FieldError("old_password", "原密码不正确", "old password is wrong"))
    try:
        validate_password(new)
    except InvalidInput as exc:
        raise InvalidInput(
            [FieldError("new_password", e.message, e.message_en) for e in exc.errors]
        ) from None
    account.password_hash = hash_secret(new)
    account.must_change_password = False
    account.updated_at = datetime.now(UTC)
    publish_account(session, account)
    session.commit()
    return account


def authenticate(session: Session, username: str, password: str) -> Account | None:
    """The enabled account whose password matches, or None (same cost whether or not it exists)."""
    account = session.get(Account, username.strip().lower())
    if account is None:
        verify_secret(DUMMY_HASH, password)
        return None
    if not verify_secret(account.password_hash, password) or account.disabled:
        return None
    return account
