"""The demo network `sanji demo` brings up: district, two townships, three village kiosks.

This module wires the tiers together for development, so it is the one place (besides the CLI)
that may import every app; the apps themselves never import each other.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import uvicorn

__all__ = [
    "DEMO_TOWNSHIPS",
    "DEMO_KIOSKS",
    "DemoNetwork",
    "offer_demo_visits",
    "register_demo_nodes",
]

DEMO_TOWNSHIPS = ("500109110000", "500109001000")
"""静观镇 and 天生街道: the townships whose (fictitious) demo villages the demo district has."""

DEMO_KIOSKS = ("500109110201", "500109110202", "500109001001")
"""柑橘村 and 腊梅村 (静观镇), 银杏社区 (天生街道): the villages that get a demo kiosk."""


def hide_password(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=f"{parts.username}:***@{parts.hostname}:{parts.port}")
    return urlunsplit(parts)


@dataclass
class DemoNetwork:
    """Every server of the demo, started in order and stopped in reverse."""

    var: Path
    host: str
    port: int
    couch_port: int
    couch_password: str
    couch_servers: list[Any] = field(default_factory=list)
    web_servers: list[tuple[str, str, uvicorn.Server, threading.Thread]] = field(
        default_factory=list
    )

    # --- CouchDB -----------------------------------------------------------------------------

    def dev_couch(self, name: str, port: int) -> Any:
        """A persistent pouchdb-server under var/couch/<name>/ on a fixed port."""
        from sync.devserver import PouchServer

        data = self.var / "couch" / name / "data"
        server = PouchServer(data_dir=data, password=self.couch_password, port=port).start()
        self.couch_servers.append(server)
        return server

    def node_url(self, district_url: str, township: str) -> str:
        """The district URL with township ``township``'s node credentials (kept under var/)."""
        from sync.topology import add_node, node_username

        store = self.var / "couch" / "nodes.json"
        passwords = json.loads(store.read_text()) if store.exists() else {}
        if township not in passwords:
            passwords[township] = add_node(district_url, township, reset=True)
            store.write_text(json.dumps(passwords, indent=1))
            store.chmod(0o600)
        parts = urlsplit(district_url)
        user = quote(node_username(township), safe="")
        netloc = f"{user}:{quote(passwords[township], safe='')}@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    # --- web servers -------------------------------------------------------------------------

    def serve(self, what: str, app: Any, port: int) -> str:
        """Run ``app`` with uvicorn in a thread on ``port``; returns its URL."""
        server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True, name=what)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"{what} did not start on port {port}")
            thread.join(0.05)
        url = f"http://{self.host}:{port}/"
        self.web_servers.append((what, url, server, thread))
        return url

    def township_node(self, code: str, couch: Any, port: int) -> str:
        """The township node's app (staff console, kiosk enrolment) on ``port``."""
        from township import db as township_db
        from township.app import create_app
        from township.settings import settings_from_env

        settings = settings_from_env(code, couchdb_url=couch.url)
        township_db.migrate(settings.database_url)
        offer_demo_visits(settings.database_url, couch.url, code)
        return self.serve(f"township {code}", create_app(settings), port)

    def kiosk(
        self, village: str, township_url: str, issue_code: Callable[[str], str], port: int
    ) -> str:
        """A headless kiosk for ``village`` under var/kiosks/<village>/, enrolled on first run."""
        from sync.store import SQLiteStore
        from village_node.app import create_app
        from village_node.enrolment import enrol, first_pull
        from village_node.settings import Settings, load_enrolment

        settings = Settings(self.var / "kiosks" / village, sync_interval=60)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if load_enrolment(settings) is None:
            code = issue_code(village)
            with SQLiteStore(settings.store_path) as store:
                enrolment = _retry(lambda: enrol(settings, store, township_url, village, code))
                first_pull(settings, store, enrolment)
        return self.serve(f"kiosk {village}", create_app(settings), port)

    # --- life cycle --------------------------------------------------------------------------

    def wait(self) -> None:
        """Block until Ctrl+C or until any web server stops."""
        from sanji_cli import wait_for_signal

        wait_for_signal([thread for *_, thread in self.web_servers])

    def stop(self) -> None:
        """Stop every web server, then every CouchDB."""
        for _, _, server, thread in reversed(self.web_servers):
            server.should_exit = True
            thread.join(10)
        for server in reversed(self.couch_servers):
            server.stop()


def _retry(step: Callable[[], Any], seconds: float = 60.0) -> Any:
    """Run ``step`` until it succeeds: a new registration needs a moment to replicate down."""
    from village_node.errors import EnrolmentFailed

    deadline = time.monotonic() + seconds
    while True:
        try:
            return step()
        except EnrolmentFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def issue_demo_code(database_url: str, couchdb_url: str) -> Callable[[str], str]:
    """A function issuing a one-time enrolment code at the district, as an administrator would."""
    from central.db import make_engine, make_sessionmaker
    from central.services import kiosks, outbox
    from sync.couch import connect

    sessions = make_sessionmaker(make_engine(database_url))

    def issue(village: str) -> str:
        with sessions() as session:
            _, code = kiosks.issue_code(session, village, "演示终端", "admin", days=14)
        outbox.flush(sessions, lambda: connect(couchdb_url))
        return code

    return issue


def offer_demo_visits(database_url: str, couch_url: str, township: str, days: int = 10) -> None:
    """On a township calendar with no offers yet, the demo staff offer both periods of the next
    ``days`` working days, and the availability is published (so the public pages have free
    periods to book)."""
    from sqlalchemy import func, select

    from central.demo import DEMO_ACCOUNTS
    from sync.couch import connect
    from sync.sql import make_engine, make_sessionmaker
    from township.models import StaffAvailability
    from township.read_model import district_rules
    from township.visits import PERIODS, Slot, publish_availability, set_offers, today_here
    from township.visits import working_days as next_working_days

    staff = {a.username: a.display_name for a in DEMO_ACCOUNTS if a.unit_code == township
             and a.role in ("township_head", "township_staff")}  # fmt: skip
    engine = make_engine(database_url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            if session.scalar(select(func.count()).select_from(StaffAvailability)):
                return
        server = connect(couch_url)
        calendar = district_rules(server)[0]
        today = today_here()
        window = [d for d in next_working_days(calendar, today, days + 1) if d > today][:days]
        offered = {Slot(d, p, who) for d in window for p in PERIODS for who in staff}
        set_offers(sessions, calendar, today, staff, window, offered)
        publish_availability(sessions, server["township"], township, window)
    finally:
        engine.dispose()


def write_demo_history(couchdb_url: str) -> int:
    """Six weeks of demo cases into the district's `district` database, on the first run only
    (``central.demo.history``); return how many documents were written."""
    from datetime import UTC, datetime

    from central.demo import demo_history
    from central.demo.history import write_history
    from sync.couch import connect

    return write_history(connect(couchdb_url)["district"], demo_history(datetime.now(UTC)))


def register_demo_nodes(database_url: str, couchdb_url: str, nodes: dict[str, str]) -> None:
    """Register the demo townships' nodes at the district (a key only on the first run)."""
    from central.db import make_engine, make_sessionmaker
    from central.services import outbox
    from central.services.nodes import node_of, register_node
    from sync.couch import connect

    sessions = make_sessionmaker(make_engine(database_url))
    with sessions() as session:
        for code, url in nodes.items():
            known = node_of(session, code)
            if known is None or known.url != url.rstrip("/"):
                register_node(session, code, url)
    outbox.flush(sessions, lambda: connect(couchdb_url))


def default_var() -> Path:
    """The folder the demo keeps its data in (``SANJI_VAR`` or var/ in the repository)."""
    return Path(os.environ.get("SANJI_VAR", Path(__file__).resolve().parent / "var"))
