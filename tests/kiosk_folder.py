"""An enrolled-looking village kiosk in a data folder, without any server: for tests and the
kiosk benchmark.

``build_kiosk`` writes ``kiosk.json`` (pointing at a closed port unless a CouchDB URL is given),
the demo catalogue as one published version and one village agent into the embedded store, and
seeds it with cases and their ``submitted`` events as the kiosk's own intake writes them, with
the kiosk's counters in ``_local/kiosk`` so the next save continues after them.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from argon2 import PasswordHasher

from central.demo import demo_items
from core.calendar import WorkCalendar
from core.cases import (
    CHINA_TIME,
    MaterialStatus,
    Origin,
    Person,
    Submitted,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
)
from core.catalogue import CatalogueItem, Mode
from core.clock import HlcClock
from core.prereview import MaterialInput, materials_states, prereview
from sync.devserver import free_port
from sync.store import SQLiteStore
from tests.factories import TOWNSHIP, VILLAGE, resident_id
from village_node.enrolment import KIOSK_LOCAL
from village_node.settings import Enrolment, Settings, save_enrolment

__all__ = [
    "AGENT",
    "CSRF",
    "INSTANCE",
    "ITEM_CODE",
    "ORIGIN",
    "PASSWORD",
    "TOWNSHIP",
    "VILLAGE",
    "build_kiosk",
    "random_id",
    "save_form",
    "seed_cases",
]

INSTANCE = "k7f3a9"
ORIGIN = Origin(VILLAGE, INSTANCE)
AGENT, PASSWORD = "agent_a", "village-pass-1"
ITEM_CODE = "500109SW0001"  # 个体工商户设立登记 (a village-side intake with materials)
CSRF = "sanji_kiosk_csrf"
"""The kiosk's CSRF cookie; its value goes back in the form field ``_csrf_token``."""
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"


def random_id(rng: random.Random) -> str:
    """A valid resident id number of someone born 1940–2000."""
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    return resident_id(f"500109{born:%Y%m%d}{rng.randrange(1000):03d}")


def save_form(intake_key: str, id_number: str, name: str = "张三") -> dict[str, str]:
    """The wizard's form saving a case of ``ITEM_CODE`` (``action=save``), without CSRF."""
    return {
        "action": "save", "item": ITEM_CODE, "intake_key": intake_key,
        "applicant_type": "person", "p_name": name, "p_id": id_number,
        "p_phone": "13800138000", "p_address": "示范村一组", "mode": "window",
        "m_application": "provided", "m_id_card": "provided",
        "m_premises_proof": "to_follow",
    }  # fmt: skip


def build_kiosk(data: Path, cases: int = 0, *, couch_url: str | None = None) -> float:
    """An enrolled-looking kiosk in ``data`` with ``cases`` cases (0 for none), syncing with
    ``couch_url`` (default: a closed port, so every sync fails fast); returns the seconds the
    seeding took."""
    settings = Settings(data, sync_interval=0)
    if couch_url is None:
        couch_url = f"http://127.0.0.1:{free_port()}/"
    save_enrolment(
        settings,
        Enrolment(
            village=VILLAGE,
            township=TOWNSHIP,
            township_url=couch_url.rstrip("/"),
            couch_url=couch_url,
            database=f"village_{VILLAGE}",
            username=f"kiosk_{INSTANCE}",
            password="not-used",
            instance=INSTANCE,
            registration="bench-registration",
        ),
    )
    store = SQLiteStore(settings.store_path, "kiosk")
    try:
        published = datetime.now(UTC).isoformat(timespec="seconds")
        items = demo_items()
        docs: list[dict[str, Any]] = [
            {"_id": f"catalogue_item:{b['code']}:000001", "type": "catalogue_item", "version": 1,
             "published_at": published, **b, "initials": ""}
            for b in items
        ]  # fmt: skip
        docs.append({
            "_id": "catalogue_manifest:000001", "type": "catalogue_manifest", "version": 1,
            "published_at": published, "published_by": "bench",
            "items": [{"code": b["code"], "name": b["name"], "kind": b["kind"],
                       "doc": f"catalogue_item:{b['code']}:000001"} for b in items],
        })  # fmt: skip
        docs.append({
            "_id": f"account:{AGENT}", "type": "account", "username": AGENT,
            "display_name": "村代办员", "role": "village_agent", "unit": VILLAGE,
            "village": VILLAGE, "township": TOWNSHIP, "disabled": False,
            "password_hash": PasswordHasher().hash(PASSWORD),
        })  # fmt: skip
        store.bulk_docs(docs)
        item = msgspec.convert(
            next(b for b in items if b["code"] == ITEM_CODE), CatalogueItem, strict=False
        )
        started = time.perf_counter()
        counter = seed_cases(store, item, cases)
        store.put_local({"_id": KIOSK_LOCAL, "counters": {ORIGIN.key: counter}})
        return time.perf_counter() - started
    finally:
        store.close()


def seed_cases(store: SQLiteStore, item: CatalogueItem, count: int, batch: int = 500) -> int:
    """``count`` cases and their ``submitted`` events over the past year; the last counter."""
    rng = random.Random(2026)
    now = datetime.now(CHINA_TIME)
    clock = HlcClock(ORIGIN.key, lambda: time.time_ns() // 1_000_000)
    calendar = WorkCalendar()
    counter = 0
    pending: list[dict[str, Any]] = []
    for n in range(count):
        wall = now - timedelta(minutes=53 * (count - n))
        inputs = tuple(
            MaterialInput(key=m.key, status=MaterialStatus.PROVIDED, deadline=None)
            for m in item.materials
        )
        review = prereview(item, inputs, today=wall.date(), calendar=calendar)
        case = new_case(
            origin=ORIGIN,
            counter=counter + 1,
            hlc=clock.tick(),
            wall_time=wall,
            author=AGENT,
            village=VILLAGE,
            township=TOWNSHIP,
            item=item,
            catalogue_version=1,
            applicant=Person(
                name=rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, 2)),
                id_number=random_id(rng),
                phone=f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
                address=f"示范村{rng.randrange(1, 9)}组{rng.randrange(1, 300)}号",
            ),
            mode=Mode.WINDOW,
            handling_unit=TOWNSHIP,
            materials=materials_states(review),
        )
        event = new_event(
            case, Submitted(), origin=ORIGIN, counter=counter + 2,
            hlc=clock.tick(after=case.stamp), wall_time=wall, author=AGENT,
        )  # fmt: skip
        counter += 2
        pending += [case_to_doc(case), event_to_doc(event)]
        if len(pending) >= batch:
            store.bulk_docs(pending)
            pending = []
    if pending:
        store.bulk_docs(pending)
    return counter
