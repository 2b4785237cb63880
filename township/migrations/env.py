"""Alembic environment for a township node's database (its case read model, later its visits)."""

from __future__ import annotations

import os

from alembic import context

from sync.readmodel import metadata as read_model_metadata
from sync.sql import run_migrations

url = context.config.get_main_option("sqlalchemy.url") or os.environ["TOWNSHIP_DATABASE_URL"]
run_migrations(url, [read_model_metadata])
