"""SQL engines, sessions and Alembic runs shared by the tiers that keep a read model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_sessionmaker", "alembic_config", "migrate", "run_migrations"]


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, full sync and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (handlers read them to shape answers)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str, migrations: Path) -> Any:
    """An Alembic configuration for ``url`` and the migrations folder (which holds alembic.ini)."""
    from alembic.config import Config

    cfg = Config(str(migrations / "alembic.ini"))
    cfg.set_main_option("script_location", str(migrations))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, migrations: Path) -> None:
    """Bring the schema at ``url`` to the newest migration (``alembic upgrade head``)."""
    from alembic import command

    logging.getLogger("alembic").setLevel(logging.WARNING)  # no chatter at every start
    command.upgrade(alembic_config(url, migrations), "head")


def run_migrations(url: str, target_metadata: Any) -> None:
    """Body of an Alembic ``env.py``: run the migrations online against ``url``."""
    from alembic import context

    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
