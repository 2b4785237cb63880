"""Shared pytest fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import couchdb
import pytest
from couchdb import http as couch_http

from sync.couch import connect, ensure_database
from sync.devserver import PouchServer

# --- CouchDB-compatible server ------------------------------------------------------------
# A fresh in-memory pouchdb-server per test module (its known crashes kill it, so no state is
# shared across modules), or the CouchDB named by COUCHDB_URL (admin credentials in the URL),
# where each test gets uniquely named databases that are deleted when the module ends.


class CouchUnderTest:
    """The CouchDB-compatible server a test module runs against."""

    def __init__(self, url: str, pouch: PouchServer | None) -> None:
        self.url = url
        self.pouch = pouch
        self.created: list[str] = []

    def database_name(self, prefix: str = "t") -> str:
        """Return a database name no other test uses (remembered for clean-up)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.created.append(name)
        return name

    def check_alive(self) -> None:
        """Fail loudly if the pouchdb-server died (a no-op for an external CouchDB)."""
        if self.pouch is not None:
            self.pouch.check_alive()

    def delete_created(self) -> None:
        """Delete the databases handed out by database_name() that exist."""
        server = connect(self.url)
        for name in self.created:
            try:
                del server[name]
            except couch_http.ResourceNotFound:
                pass
        self.created.clear()


@pytest.fixture(scope="module")
def couch_server() -> Iterator[CouchUnderTest]:
    """A CouchDB-compatible server for one test module: COUCHDB_URL or a fresh pouchdb-server."""
    external = os.environ.get("COUCHDB_URL")
    if external:
        target = CouchUnderTest(external, None)
        try:
            yield target
        finally:
            target.delete_created()
        return
    with PouchServer() as pouch:
        yield CouchUnderTest(pouch.url, pouch)


@pytest.fixture
def couch(couch_server: CouchUnderTest) -> Iterator[couchdb.Server]:
    """A couchdb.Server (admin) for one test; afterwards checks the server is still alive."""
    yield connect(couch_server.url)
    couch_server.check_alive()


@pytest.fixture
def couch_db(couch: couchdb.Server, couch_server: CouchUnderTest) -> couchdb.Database:
    """A new, empty database with a unique name."""
    return ensure_database(couch, couch_server.database_name())


# --- end of CouchDB-compatible server -----------------------------------------------------
