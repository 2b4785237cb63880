"""The district's SQL database: engine, sessions and migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync import sql
from sync.sql import make_engine, make_sessionmaker

__all__ = ["make_engine", "make_sessionmaker", "migrate", "alembic_config", "MIGRATIONS"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Any:
    """The district's Alembic configuration for ``url``."""
    return sql.alembic_config(url, MIGRATIONS)


def migrate(url: str) -> None:
    """Bring the district database at ``url`` to the newest migration."""
    sql.migrate(url, MIGRATIONS)
