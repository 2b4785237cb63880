"""The demo district loads into a fresh database, completely and idempotently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.db import make_engine, make_sessionmaker, migrate
from central.db.models import Account, Item, OutboxDoc, Unit
from central.demo import DEMO_ACCOUNTS, DEMO_LOGINS, demo_items, load_demo
from central.services.accounts import authenticate
from central.services.catalogue import item_value
from core.catalogue import Kind, Mode, validate_item
from core.roles import Role


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A session on a fresh, migrated SQLite database."""
    url = f"sqlite:///{tmp_path / 'district.db'}"
    migrate(url)
    engine = make_engine(url)
    with make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def _count(session: Session, stmt) -> int:  # type: ignore[no-untyped-def]
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def test_loads_everything_once(session: Session) -> None:
    first = load_demo(session)
    units = session.scalars(select(Unit)).all()
    items = session.scalars(select(Item)).all()
    accounts = session.scalars(select(Account)).all()
    assert first == {
        "units": len(units),
        "demo_units": 7,
        "items": len(items),
        "accounts": len(DEMO_ACCOUNTS),
    }
    assert len(accounts) == len(DEMO_ACCOUNTS)
    outbox_before = _count(session, select(OutboxDoc.id))

    second = load_demo(session)

    assert second == {"units": 0, "demo_units": 0, "items": 0, "accounts": 0}
    assert _count(session, select(OutboxDoc.id)) == outbox_before


def test_hierarchy(session: Session) -> None:
    load_demo(session)
    by_level = {
        level: session.scalars(select(Unit).where(Unit.level == level)).all()
        for level in ("district", "township", "village")
    }
    assert [u.code for u in by_level["district"]] == ["500109000000"]
    assert len(by_level["township"]) == 17
    assert all(u.parent_code == "500109000000" and not u.demo for u in by_level["township"])
    villages = by_level["village"]
    assert {u.parent_code for u in villages} == {"500109110000", "500109001000"}
    assert 3 <= sum(u.parent_code == "500109110000" for u in villages) <= 4
    assert sum(u.parent_code == "500109001000" for u in villages) == 3
    for v in villages:
        assert v.demo, v.code
        assert "演示" in v.name and "示例" in v.name, v.name


def test_catalogue(session: Session) -> None:
    load_demo(session)
    rows = session.scalars(select(Item)).all()
    assert len(rows) >= 30
    assert len(rows) == len(demo_items())
    items = [validate_item(item_value(r)) for r in rows]
    assert {i.kind for i in items} == set(Kind)
    door_to_door = [i for i in items if Mode.DOOR_TO_DOOR in i.modes]
    assert len(door_to_door) >= 3
    assert all(i.door_to_door_for for i in door_to_door)
    assert any(m.may_follow and m.follow_days for i in items for m in i.materials)
    for i in items:
        assert len(i.code) == 12 and i.code.startswith("500109"), i.code
        assert i.modes, i.code
        if i.legal_limit_days is not None:
            assert i.promised_limit_days <= i.legal_limit_days, i.code
        assert "示例数据" in i.limit_note, i.code
    names = {i.name for i in items}
    for expected in ("党员组织关系转接", "社会保障卡申领", "个体工商户设立登记", "快递代收代投"):
        assert expected in names


def test_accounts_log_in_and_fit_their_units(session: Session) -> None:
    load_demo(session)
    villages = set(session.scalars(select(Unit.code).where(Unit.level == "village")).all())
    agents = {a.unit_code for a in DEMO_ACCOUNTS if a.role == Role.VILLAGE_AGENT.value}
    assert agents == villages
    for username, password, what in DEMO_LOGINS:
        assert what
        account = authenticate(session, username, password)
        assert account is not None, username
    admin = session.get(Account, "admin")
    assert admin is not None
    assert (admin.role, admin.unit_code) == ("district_admin", "500109000000")


def test_outbox_holds_directory_documents_without_passwords(session: Session) -> None:
    load_demo(session)
    docs = session.scalars(select(OutboxDoc).order_by(OutboxDoc.id)).all()
    unit_docs = [d for d in docs if d.body.get("type") == "unit"]
    account_docs = [d for d in docs if d.body.get("type") == "account"]
    assert {d.database for d in unit_docs + account_docs} == {"directory"}
    assert {d.body["code"] for d in unit_docs} == set(session.scalars(select(Unit.code)).all())
    assert {d.body["username"] for d in account_docs} == {a.username for a in DEMO_ACCOUNTS}
    # The newest document of each demo village carries the demo flag.
    newest = {d.doc_id: d.body for d in unit_docs}
    assert newest["unit:500109110201"]["demo"] is True
    assert newest["unit:500109110000"]["demo"] is False
    passwords = {a.password for a in DEMO_ACCOUNTS}
    for d in account_docs:
        text = json.dumps(d.body, ensure_ascii=False)
        assert not any(p in text for p in passwords), d.doc_id
        assert d.body["password_hash"].startswith("$argon2")
