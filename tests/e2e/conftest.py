"""Browser tests: a real district server (uvicorn, SQLite, pouchdb-server) in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from central.app import create_app
from central.db import make_engine, make_sessionmaker, migrate
from central.demo import load_demo
from central.services import outbox
from central.settings import Settings
from sync.couch import connect
from tests.conftest import CouchUnderTest
from tests.servers import serve, stop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class District:
    """A running district server with the demo district loaded."""

    url: str
    couch_url: str
    database_url: str

    def couch(self):  # type: ignore[no-untyped-def]
        """A couchdb-python server for checking what reached CouchDB."""
        return connect(self.couch_url)


@pytest.fixture(scope="module")
def district(
    couch_server: CouchUnderTest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[District]:
    """The district server on a free loopback port, demo data loaded."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('district') / 'district.sqlite'}"
    migrate(database_url)
    sessions = make_sessionmaker(make_engine(database_url))
    with sessions() as session:
        load_demo(session)
    outbox.flush(sessions, lambda: connect(couch_server.url))
    app = create_app(Settings(database_url=database_url, couchdb_url=couch_server.url))
    server, thread, url = serve(app)
    yield District(url, couch_server.url, database_url)
    stop(server, thread)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright for the session: its sync API runs a loop in this thread, so a second
    ``sync_playwright()`` while it lives would fail; launch other browsers from this one."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run ./test, which installs it")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page (its own cookies)."""
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def login(
    page: Page, district: District, username: str = "admin", password: str = "sanji-admin-2026"
) -> None:
    """Log in through the login form."""
    page.goto(f"{district.url}/login")
    page.get_by_label("登录名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{district.url}/")
