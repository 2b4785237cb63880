"""Township node settings, read from the environment in one place."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.hierarchy import Level, level_of

__all__ = ["TownshipSettings", "settings_from_env", "public_url", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def public_url(url: str) -> str:
    """``url`` without its credentials (how others reach the same server)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/") + "/"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


@dataclass(frozen=True)
class TownshipSettings:
    """What a township node (or the district's own service centre) needs to run."""

    code: str
    couchdb_url: str
    """This township's CouchDB, with admin credentials."""
    database_url: str = ""
    """The node's SQL database (read model, visit calendar); default SQLite under var/."""
    public_couch_url: str = ""
    """How kiosks reach this township's CouchDB; default ``couchdb_url`` without credentials."""
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    couch_timeout: float = 10.0
    enrol_max_failures: int = 10
    """Wrong enrolment codes per village within ``enrol_window_seconds`` before 429."""
    enrol_window_seconds: float = 600.0
    session_idle: float = 1800.0
    """Seconds without a request before a console session ends."""
    project_every: float = 3.0
    """Seconds between catching the read model up with the township database (0: never)."""
    video_token_ttl: float = 120.0
    """Seconds a video call token admits its side to the call's WebSocket."""
    ice_servers: tuple[dict[str, Any], ...] = ()
    """STUN/TURN servers for video calls, as RTCPeerConnection ``iceServers`` (none on one LAN),
    e.g. ``({"urls": "turn:turn.example:3478", "username": "u", "credential": "p"},)``."""
    debug: bool = False

    @property
    def case_database(self) -> str:
        """The CouchDB database holding the cases this node works: ``township``, or
        ``district`` at the district's own service centre."""
        return "district" if level_of(self.code) is Level.DISTRICT else "township"

    def __post_init__(self) -> None:
        code = self.code.strip()
        if level_of(code) is Level.VILLAGE:  # raises InvalidInput on a malformed code
            raise ValueError(f"a township node runs with a township or district code: {code!r}")
        object.__setattr__(self, "code", code)
        if not self.database_url:
            url = f"sqlite:///{REPO_ROOT / 'var' / f'township-{code}.sqlite'}"
            object.__setattr__(self, "database_url", url)
        if not self.public_couch_url and self.couchdb_url:
            object.__setattr__(self, "public_couch_url", public_url(self.couchdb_url))


def settings_from_env(code: str, couchdb_url: str | None = None) -> TownshipSettings:
    """Build settings from ``COUCHDB_URL``, ``TOWNSHIP_DATABASE_URL``,
    ``TOWNSHIP_PUBLIC_COUCH_URL``, ``SANJI_SECRET_KEY``, ``SANJI_VAR``, ``SANJI_DEBUG`` and
    ``SANJI_ICE_SERVERS`` (a JSON list of RTCPeerConnection ``iceServers``)."""
    var = Path(os.environ.get("SANJI_VAR", REPO_ROOT / "var"))
    var.mkdir(parents=True, exist_ok=True)
    code = code.strip()
    key = os.environ.get("SANJI_SECRET_KEY")
    return TownshipSettings(
        code=code,
        couchdb_url=couchdb_url or os.environ.get("COUCHDB_URL", ""),
        database_url=os.environ.get("TOWNSHIP_DATABASE_URL")
        or f"sqlite:///{var / f'township-{code}.sqlite'}",
        public_couch_url=os.environ.get("TOWNSHIP_PUBLIC_COUCH_URL", ""),
        secret_key=bytes.fromhex(key) if key else _stable_dev_key(var, code),
        ice_servers=tuple(json.loads(os.environ.get("SANJI_ICE_SERVERS") or "[]")),
        debug=os.environ.get("SANJI_DEBUG") == "1",
    )


def _stable_dev_key(var: Path, code: str) -> bytes:
    """A secret kept under var/ so sessions survive a restart of a development node."""
    path = var / f"township-{code}.secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())
