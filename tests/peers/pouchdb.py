"""Drive the Node PouchDB peer (``pouchdb_peer.js``): one long-lived node process per peer.

PouchDB's in-memory databases live as long as the process, so a test can edit, replicate and
dump them over several rounds. Commands and answers are JSON lines (see the script's header).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

from sync.database import Doc

__all__ = ["PEER_SCRIPT", "PouchPeer", "PouchPeerError"]

PEER_SCRIPT = Path(__file__).resolve().parent / "pouchdb_peer.js"


class PouchPeerError(RuntimeError):
    """PouchDB answered a command with an error (``name``, ``status``, ``message``)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('name')} ({error.get('status')}): {error.get('message')}")
        self.name = error.get("name")
        self.status = error.get("status")


class PouchPeer:
    """A node process running PouchDB 7.3.1 (memory adapter) that answers JSON commands.

    A database is named by a plain name (PouchDB in memory) or a server URL (http adapter).
    """

    def __init__(self, node: str | None = None) -> None:
        executable = node or shutil.which("node")
        if executable is None:
            raise FileNotFoundError("node (Node.js 18+) is needed for the PouchDB peer")
        self.process = subprocess.Popen(
            [executable, str(PEER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def command(self, cmd: str, **args: Any) -> Any:
        """Send one command and return its result; an error answer raises PouchPeerError."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}, ensure_ascii=False) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the PouchDB peer exited (code {self.process.wait(timeout=5)})")
        answer = json.loads(line)
        if "error" in answer:
            raise PouchPeerError(answer["error"])
        return answer["ok"]

    # -- conveniences ----------------------------------------------------------------------

    def put(self, db: str, doc: Doc) -> str:
        """Write one document as a new edit; return its new rev."""
        return self.command("put", db=db, doc=doc)["rev"]

    def get(self, db: str, doc_id: str, **options: Any) -> Doc:
        """``db.get(id, options)``."""
        return self.command("get", db=db, id=doc_id, options=options)

    def bulk_docs(self, db: str, docs: list[Doc], *, new_edits: bool = True) -> list[Doc]:
        """``db.bulkDocs(docs, {new_edits})``."""
        return self.command("bulk_docs", db=db, docs=docs, new_edits=new_edits)

    def replicate(self, source: str, target: str, *, batch_size: int = 100) -> dict[str, Any]:
        """``PouchDB.replicate(source, target)``: its result with ``ms``, ``requests``,
        ``body_bytes`` and ``wire_bytes`` (request bytes node sent)."""
        return self.command("replicate", **{"from": source, "to": target}, batch_size=batch_size)

    def dump(self, db: str) -> dict[str, Any]:
        """Every document: winner, whether it is deleted, sorted leaves, the winner's body."""
        return self.command("dump", db=db)

    def close(self) -> None:
        """Close stdin (the peer exits) and wait for the process."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> PouchPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
