"""A township node's SQL database: its case read model (and, with the console, its visits)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync import sql

__all__ = ["MIGRATIONS", "alembic_config", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Any:
    """The township's Alembic configuration for ``url``."""
    return sql.alembic_config(url, MIGRATIONS)


def migrate(url: str) -> None:
    """Bring the township database at ``url`` to the newest migration."""
    sql.migrate(url, MIGRATIONS)
