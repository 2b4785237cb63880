"""pouchdb-server as a stand-in for CouchDB in development and tests (never in production)."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

__all__ = ["PouchServer", "find_pouchdb_server", "free_port", "project_root"]

_BIN = Path("tools/pouchdb/node_modules/.bin/pouchdb-server")
_PROCESS_LOG = "process.log"  # stdout and stderr of node: crash traces land here
_SERVER_LOG = "log.txt"  # pouchdb-server's own request log, written into its working dir


def project_root() -> Path:
    """Return the repository root (the folder holding ``sync/``)."""
    return Path(__file__).resolve().parent.parent


def find_pouchdb_server(root: Path) -> Path:
    """Return the project-local pouchdb-server executable, or explain how to install it."""
    path = root / _BIN
    if not path.exists():
        raise FileNotFoundError(
            f"pouchdb-server is not installed (no {path}). Run the set-up command from "
            f"README.md, which installs it with npm into {root / 'tools/pouchdb'}."
        )
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of a text file, or '' if it does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class PouchServer:
    """A pouchdb-server process on a free loopback port with an admin, like CouchDB 3.

    ``data_dir`` given: databases persist there and the process runs in its parent folder
    (keep it under ``var/``: config.json with the hashed admin and log.txt land there).
    ``data_dir`` None: ``--in-memory`` in a temporary working folder removed on stop.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        root: Path | None = None,
        admin: str = "admin",
        password: str | None = None,
        start_timeout: float = 20.0,
        port: int | None = None,
    ) -> None:
        self.executable = find_pouchdb_server(root or project_root())
        self.data_dir = data_dir.resolve() if data_dir is not None else None
        self.admin = admin
        self.password = password or secrets.token_urlsafe(16)
        self.start_timeout = start_timeout
        self.fixed_port = port
        """A port to listen on (the demo's fixed addresses); None: a free one."""
        self.port = 0
        self.work_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self._temporary_dir = False

    # -- addresses -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:<port>/`` without credentials."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def url(self) -> str:
        """Return the server URL carrying the admin's credentials."""
        user, password = quote(self.admin, safe=""), quote(self.password, safe="")
        return f"http://{user}:{password}@127.0.0.1:{self.port}/"

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> PouchServer:
        """Start the process, wait until it answers, make sure the admin exists; return self."""
        if self.process is not None:
            raise RuntimeError("pouchdb-server already started")
        began = time.monotonic()
        if self.data_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="sanji-pouchdb-"))
            self._temporary_dir = True
            storage = ["--in-memory"]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.work_dir = self.data_dir.parent
            storage = ["-d", str(self.data_dir)]
        try:
            for attempt in range(3):
                self.port = self.fixed_port or free_port()
                self._spawn(storage)
                if self._wait_until_answering():
                    break
                log = self.log_tail()
                self.process = None
                if "EADDRINUSE" not in log or attempt == 2 or self.fixed_port:
                    raise RuntimeError(f"pouchdb-server did not start; last log lines:\n{log}")
            self._ensure_admin()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _spawn(self, storage: list[str]) -> None:
        """Launch the process with its output appended to process.log in the working dir."""
        assert self.work_dir is not None
        command = [
            str(self.executable),
            "--port", str(self.port),
            "--host", "127.0.0.1",
            "-n", "--no-color",
            *storage,
        ]  # fmt: skip
        with open(self.work_dir / _PROCESS_LOG, "ab") as output:
            self.process = subprocess.Popen(
                command,
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_answering(self) -> bool:
        """Poll ``GET /`` until it answers (True) or the process exits (False); time out."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                with urllib.request.urlopen(self.base_url, timeout=2) as response:
                    if response.status == 200:
                        return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError(
            f"pouchdb-server did not answer within {self.start_timeout} s; "
            f"last log lines:\n{self.log_tail()}"
        )

    def _request(self, method: str, path: str, body: bytes | None, auth: bool) -> int:
        """Send one request to the server and return its HTTP status."""
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        request.add_header("Content-Type", "application/json")
        if auth:
            token = f"{self.admin}:{self.password}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _ensure_admin(self) -> None:
        """Create the admin, or check that an existing one (persistent data) has our password."""
        if self._request("GET", "_session", None, auth=True) == 200:
            return  # the admin exists already with this password (a restart)
        body = json.dumps(self.password).encode()
        status = self._request("PUT", f"_config/admins/{quote(self.admin, safe='')}", body, False)
        if status != 200:
            raise RuntimeError(
                f"could not create admin {self.admin!r} (HTTP {status}): {self.work_dir}/"
                "config.json probably holds other admin credentials"
            )

    def stop(self) -> None:
        """Terminate the process (kill it after 5 s) and remove a temporary working dir."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        if self._temporary_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self._temporary_dir = False

    def __enter__(self) -> PouchServer:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- health ----------------------------------------------------------------------------

    def alive(self) -> bool:
        """Tell whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise RuntimeError with the log tail if the server died or stopped answering."""
        if self.process is None:
            raise RuntimeError("pouchdb-server is not running (never started or stopped)")
        if self.alive():
            try:
                with urllib.request.urlopen(self.base_url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (OSError, http.client.HTTPException):
                pass
            try:  # a crash on the last request may still be tearing the process down
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                raise RuntimeError(
                    f"pouchdb-server (pid {self.process.pid}, port {self.port}) is running but "
                    f"does not answer GET /; last log lines:\n{self.log_tail()}"
                ) from None
        raise RuntimeError(
            f"pouchdb-server (pid {self.process.pid}, port {self.port}) died with exit code "
            f"{self.process.returncode}, most likely crashed by the last request; "
            f"last log lines:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the request log and of the process output (crash traces)."""
        if self.work_dir is None:
            return ""
        parts = []
        for name in (_SERVER_LOG, _PROCESS_LOG):
            tail = _tail(self.work_dir / name, lines)
            if tail:
                parts.append(f"--- {name}\n{tail}")
        return "\n".join(parts) or "(no log output)"
