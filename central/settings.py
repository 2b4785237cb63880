"""District server settings, read from the environment in one place."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Settings", "settings_from_env", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """What the district server needs to run."""

    database_url: str
    couchdb_url: str
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    couch_timeout: float = 10.0
    max_template_bytes: int = 5 * 1024 * 1024
    max_csv_bytes: int = 2 * 1024 * 1024
    session_max_age: int = 8 * 3600
    enrolment_code_days: int = 14
    booking_window_days: int = 14
    """Citizens book home visits on the next this many working days (today included)."""
    booking_cutoff_minutes: int = 120
    """Bookings of a period close this long before it starts (am 09:00, pm 14:00 China time)."""
    township_timeout: float = 5.0
    """Seconds the district waits for a township node's answer before it calls it unreachable."""
    public_post_limit: int = 60
    """POSTs one client address may make to the public pages and Open311 per window."""
    public_post_window: float = 600.0
    """The rate-limit window in seconds (in memory, per process: ``central.web.ratelimit``)."""
    kiosk_silent_hours: float = 24.0
    """The kiosk fleet highlights a kiosk not heard from for longer than this."""
    kiosk_skew_minutes: int = 15
    """The kiosk fleet flags a kiosk whose clock is off the district's by more than this."""
    node_check_seconds: float = 300.0
    """Seconds between two polls of every township node's replications (0: never)."""
    debug: bool = False


def settings_from_env(couchdb_url: str | None = None) -> Settings:
    """Build settings from ``DATABASE_URL``, ``COUCHDB_URL``, ``SANJI_SECRET_KEY`` and the
    booking rules ``SANJI_BOOKING_WINDOW_DAYS`` / ``SANJI_BOOKING_CUTOFF_MINUTES`` and the kiosk
    fleet's ``SANJI_KIOSK_SILENT_HOURS`` / ``SANJI_KIOSK_SKEW_MINUTES`` and the township nodes'
    replication poll ``SANJI_NODE_CHECK_SECONDS``."""
    var = Path(os.environ.get("SANJI_VAR", REPO_ROOT / "var"))
    var.mkdir(parents=True, exist_ok=True)
    key = os.environ.get("SANJI_SECRET_KEY")
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{var / 'district.sqlite'}",
        couchdb_url=couchdb_url or os.environ.get("COUCHDB_URL", ""),
        secret_key=bytes.fromhex(key) if key else _stable_dev_key(var),
        booking_window_days=int(os.environ.get("SANJI_BOOKING_WINDOW_DAYS", "14")),
        booking_cutoff_minutes=int(os.environ.get("SANJI_BOOKING_CUTOFF_MINUTES", "120")),
        kiosk_silent_hours=float(os.environ.get("SANJI_KIOSK_SILENT_HOURS", "24")),
        kiosk_skew_minutes=int(os.environ.get("SANJI_KIOSK_SKEW_MINUTES", "15")),
        node_check_seconds=float(os.environ.get("SANJI_NODE_CHECK_SECONDS", "300")),
        debug=os.environ.get("SANJI_DEBUG") == "1",
    )


def _stable_dev_key(var: Path) -> bytes:
    """A secret kept under var/ so sessions survive a restart of a development server."""
    path = var / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())
