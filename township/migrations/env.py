"""Alembic environment for a township node's database (its case read model and its own tables)."""

from __future__ import annotations

import os

from alembic import context

from sync.readmodel import metadata as read_model_metadata
from sync.sql import run_migrations
from sync.writer import metadata as writer_metadata
from township.models import metadata as township_metadata

url = context.config.get_main_option("sqlalchemy.url") or os.environ["TOWNSHIP_DATABASE_URL"]
run_migrations(url, [read_model_metadata, township_metadata, writer_metadata])
