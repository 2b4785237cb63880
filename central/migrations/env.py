"""Alembic environment for the district database."""

from __future__ import annotations

from alembic import context

from central.db.models import Base
from central.settings import settings_from_env
from sync.readmodel import metadata as read_model_metadata
from sync.sql import run_migrations

url = context.config.get_main_option("sqlalchemy.url") or settings_from_env().database_url
# The district's own tables and the case read model (sync.readmodel) it shares with townships.
run_migrations(url, [Base.metadata, read_model_metadata])
