"""Alembic environment for the district database."""

from __future__ import annotations

from alembic import context

from central.db import make_engine
from central.db.models import Base
from central.settings import settings_from_env
from sync.readmodel import metadata as read_model_metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or settings_from_env().database_url
# The district's own tables and the case read model (sync.readmodel) it shares with townships.
target_metadata = [Base.metadata, read_model_metadata]


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
