"""The demo district (北碚区): units, a realistic catalogue and demo accounts, loaded idempotently.

The district and its 17 towns/streets are real division codes; the villages and communities
beneath 静观镇 and 天生街道 are fictitious and flagged ``demo``. Loading twice changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from importlib.resources import files
from typing import Any, NamedTuple

import msgspec
from sqlalchemy.orm import Session

from central.db.models import Account, Item
from central.demo.history import history
from central.services.accounts import create_account
from central.services.catalogue import create_item
from central.services.hierarchy import import_units_csv, mark_demo
from core.cases import CHINA_TIME
from core.catalogue import CatalogueItem
from core.hierarchy import Level, level_of, township_of

__all__ = [
    "DEMO_ACCOUNTS",
    "DEMO_LOGINS",
    "DemoAccount",
    "demo_history",
    "demo_items",
    "demo_units_csv",
    "load_demo",
]

DISTRICT = "500109000000"
JINGGUAN = "500109110000"
TIANSHENG = "500109001000"
ADMIN_PASSWORD = "sanji-admin-2026"
DEMO_PASSWORD = "sanji-demo-2026"
LOADED_BY = "demo"


class DemoAccount(NamedTuple):
    """One demo login and the unit it belongs to."""

    username: str
    display_name: str
    role: str
    unit_code: str
    password: str
    what: str


_STAFF = [  # username, person, role, unit, what
    ("admin", "区管理员", "district_admin", DISTRICT, "区管理员·北碚区"),
    ("jg.zhang", "张敏", "township_head", JINGGUAN, "中心负责人·静观镇"),
    ("jg.li", "李强", "township_staff", JINGGUAN, "窗口人员·静观镇"),
    ("ts.wang", "王芳", "township_head", TIANSHENG, "中心负责人·天生街道"),
    ("ts.chen", "陈刚", "township_staff", TIANSHENG, "窗口人员·天生街道"),
]
_AGENTS = [  # username, village, short village name
    ("jg.v201", "500109110201", "柑橘村"),
    ("jg.v202", "500109110202", "腊梅村"),
    ("jg.v203", "500109110203", "花木村"),
    ("jg.v204", "500109110204", "茶园村"),
    ("ts.v001", "500109001001", "银杏社区"),
    ("ts.v002", "500109001002", "书香社区"),
    ("ts.v003", "500109001003", "晨曦社区"),
]

DEMO_ACCOUNTS: list[DemoAccount] = [
    DemoAccount(
        username,
        f"{person}（演示）",
        role,
        unit,
        ADMIN_PASSWORD if role == "district_admin" else DEMO_PASSWORD,
        what,
    )
    for username, person, role, unit, what in _STAFF
] + [
    DemoAccount(
        username,
        f"{village}代办员（演示）",
        "village_agent",
        code,
        DEMO_PASSWORD,
        f"村代办员·{village}",
    )
    for username, code, village in _AGENTS
]
"""Every demo account; village agents are named <township>.v<last 3 digits of the village code>."""

DEMO_LOGINS: list[tuple[str, str, str]] = [(a.username, a.password, a.what) for a in DEMO_ACCOUNTS]
"""(username, password, what it is) for the run command to print."""


def demo_units_csv() -> bytes:
    """The demo hierarchy as CSV bytes (code,name,parent)."""
    return files(__name__).joinpath("units.csv").read_bytes()


def demo_items() -> list[dict[str, Any]]:
    """The demo catalogue items as decoded JSON objects (each a CatalogueItem)."""
    data = json.loads(files(__name__).joinpath("catalogue.json").read_text(encoding="utf-8"))
    return list(data["items"])


def _demo_village_codes(data: bytes) -> list[str]:
    rows = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    return [row["code"] for row in rows if level_of(row["code"]) is Level.VILLAGE]


def demo_history(now: datetime) -> list[dict[str, Any]]:
    """Six weeks of case documents at 静观镇 and 天生街道 up to ``now`` (``history``), handled by
    the demo staff."""
    villages: dict[str, list[str]] = {JINGGUAN: [], TIANSHENG: []}
    for code in _demo_village_codes(demo_units_csv()):
        villages.get(township_of(code) or "", []).append(code)
    staff: dict[str, list[tuple[str, str]]] = {}
    for a in DEMO_ACCOUNTS:
        if a.role in ("township_staff", "township_head"):
            staff.setdefault(a.unit_code, []).append((a.username, a.display_name))
    items = [msgspec.convert(body, CatalogueItem, strict=False) for body in demo_items()]
    return history(now.astimezone(CHINA_TIME).date(), now, items, villages, staff)


def load_demo(session: Session) -> dict[str, int]:
    """Load the demo district's units, catalogue items and accounts; return how many were added.

    Only what is missing is added (units by code, items by code, accounts by login), so a
    second run adds nothing and fails on nothing.
    """
    data = demo_units_csv()
    units = import_units_csv(session, data)
    marked = mark_demo(session, _demo_village_codes(data))
    items = 0
    for body in demo_items():
        if session.get(Item, body["code"]) is None:
            create_item(session, body, LOADED_BY)
            items += 1
    accounts = 0
    for a in DEMO_ACCOUNTS:
        if session.get(Account, a.username) is None:
            create_account(session, a.username, a.display_name, a.role, a.unit_code, a.password)
            accounts += 1
    return {"units": len(units), "demo_units": len(marked), "items": items, "accounts": accounts}
