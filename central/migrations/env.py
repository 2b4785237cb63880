"""Alembic environment for the district database."""

from __future__ import annotations

from alembic import context

from central.db.models import Base
from central.settings import settings_from_env
from sync.readmodel import metadata as read_model_metadata
from sync.sql import run_migrations
from sync.writer import metadata as writer_metadata

url = context.config.get_main_option("sqlalchemy.url") or settings_from_env().database_url
# The district's own tables, the case read model (sync.readmodel) it shares with townships and
# the writers table (sync.writer) of the case documents it writes itself.
run_migrations(url, [Base.metadata, read_model_metadata, writer_metadata])
