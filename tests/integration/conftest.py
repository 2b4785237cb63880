"""Fixtures for integration tests: real SQL databases (SQLite and PostgreSQL) built by Alembic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from central.db import make_engine, make_sessionmaker, migrate
from tests.sql import throwaway_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, its schema built by `alembic upgrade head`."""
    with throwaway_database(request.param, tmp_path) as url:
        migrate(url)
        yield url


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the migrated database."""
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def db(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One session on the migrated database."""
    with sessions() as session:
        yield session
