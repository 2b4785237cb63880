"""Alembic environment for a township node's database (its case read model, later its visits)."""

from __future__ import annotations

import os

from alembic import context

from sync.readmodel import metadata as read_model_metadata
from sync.sql import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url") or os.environ["TOWNSHIP_DATABASE_URL"]
target_metadata = [read_model_metadata]


def run() -> None:
    """Run migrations online against ``url``."""
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


run()
