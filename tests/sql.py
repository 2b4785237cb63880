"""Throw-away SQL databases for tests: an SQLite file or a fresh local PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

__all__ = ["PG_ADMIN_URL", "ensure_postgres", "throwaway_database"]

PG_ADMIN_URL = os.environ.get("SANJI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def ensure_postgres() -> None:
    """Make sure the machine's PostgreSQL answers, starting its cluster if it is down."""
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
        return
    except psycopg.OperationalError:
        pass
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    if not versions:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} and no local cluster was found"
        )
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"],
        check=False,
    )
    psycopg.connect(PG_ADMIN_URL, connect_timeout=10).close()


@contextmanager
def throwaway_database(kind: str, tmp: Path) -> Iterator[str]:
    """Yield the URL of an empty database of ``kind`` (sqlite or postgresql), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'sanji.sqlite'}"
        return
    ensure_postgres()
    name = f"sanji_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
