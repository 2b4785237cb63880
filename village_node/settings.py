"""The kiosk's settings and its enrolment file: everything of one kiosk lives in one folder."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "Settings",
    "Enrolment",
    "settings_from_env",
    "load_enrolment",
    "save_enrolment",
    "credentialed_url",
]

DATA_ENV = "SANJI_KIOSK_DATA"


@dataclass(frozen=True)
class Settings:
    """Where the kiosk keeps its data and how often it syncs."""

    data_dir: Path
    sync_interval: float = 300.0
    """Seconds between background syncs; 0 turns the background sync off."""
    session_idle: int = 30 * 60
    """A login ends after this many seconds without a request."""
    couch_timeout: float = 30.0
    """Socket timeout of every request to the township (a half-open link must not hang us)."""
    enrol_timeout: float = 20.0
    video_answer_timeout: float = 60.0
    """Seconds a video call waits for township staff to answer before offering the fallback."""
    debug: bool = False

    @property
    def store_path(self) -> Path:
        """The embedded document store."""
        return self.data_dir / "store.sqlite3"

    @property
    def enrolment_path(self) -> Path:
        """The enrolment file (credentials: mode 0600)."""
        return self.data_dir / "kiosk.json"

    @property
    def secret_path(self) -> Path:
        """The key that signs session and CSRF cookies, made on first start."""
        return self.data_dir / "secret.key"

    def secret_key(self) -> bytes:
        """The 32-byte signing key, created (mode 0600) on first use."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.secret_path
        if not path.exists():
            _write_private(path, secrets.token_hex(32))
        return bytes.fromhex(path.read_text(encoding="ascii").strip())


@dataclass(frozen=True)
class Enrolment:
    """What the township answered when this kiosk enrolled (``kiosk.json``)."""

    village: str
    township: str
    township_url: str
    couch_url: str
    database: str
    username: str
    password: str
    instance: str
    registration: str

    def database_url(self) -> str:
        """The township's CouchDB URL with this kiosk's credentials in it."""
        return credentialed_url(self.couch_url, self.username, self.password)


def settings_from_env(data: str | Path | None = None, **overrides: object) -> Settings:
    """Settings from the command line's ``data`` folder or ``SANJI_KIOSK_DATA``."""
    folder = data or os.environ.get(DATA_ENV)
    if not folder:
        raise ValueError(f"请用 --data 或环境变量 {DATA_ENV} 指定终端数据目录")
    values: dict[str, object] = {"data_dir": Path(folder).expanduser().resolve()}
    interval = os.environ.get("SANJI_KIOSK_SYNC_INTERVAL")
    if interval:
        values["sync_interval"] = float(interval)
    timeout = os.environ.get("SANJI_KIOSK_VIDEO_TIMEOUT")
    if timeout:
        values["video_answer_timeout"] = float(timeout)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)  # type: ignore[arg-type]


def credentialed_url(url: str, username: str, password: str) -> str:
    """``url`` with ``username:password@`` in it (replacing any credentials there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def load_enrolment(settings: Settings) -> Enrolment | None:
    """The saved enrolment, or None while the kiosk is not enrolled."""
    try:
        data = json.loads(settings.enrolment_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    fields = Enrolment.__dataclass_fields__
    return Enrolment(**{name: str(data.get(name, "")) for name in fields})


def save_enrolment(settings: Settings, enrolment: Enrolment) -> None:
    """Write ``kiosk.json`` atomically, readable by this user only."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(enrolment), ensure_ascii=False, indent=2)
    _write_private(settings.enrolment_path, text)


def _write_private(path: Path, text: str) -> None:
    """Write a file with mode 0600 from the start, replacing the old one in one step."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
