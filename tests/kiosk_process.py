"""A stand-in for the kiosk program in fault tests: write cases into a SQLiteStore, then sync.

    python -m tests.kiosk_process --store PATH --url URL --db NAME [--cases N]
        [--direction push|pull] [--batch-size B] [--pause SECONDS]
        [--stall-after-batch K] [--stall-after-write K]

The child opens (or creates) the kiosk store at PATH, writes N case documents, each followed by
its ``submitted`` event (core.cases.new_case / new_event, stamped by the kiosk's hybrid logical
clock), then runs one ``sync.replicator.replicate`` between the store and database NAME on the
server at URL: ``push`` (store → server) or ``pull`` (server → store). The kiosk's instance id,
document counter and last clock stamp live in the store's ``_local/kiosk`` document, so a
restarted kiosk keeps its identity and never reuses an id.

``--stall-after-batch K`` / ``--stall-after-write K`` make it stall (sleep a minute) after the
K-th checkpointed batch / the K-th ``_bulk_docs``, so a test kills it at exactly that point.

It prints one JSON object per line, flushed at once, so a test can kill -9 it at a known point:

* ``{"event": "ack", "id", "rev"}`` after each write the store acknowledged (returned);
* ``{"event": "written", "writes", "docs", "errors"}`` when a ``_bulk_docs`` to the target
  returned, before its batch is checkpointed (only with ``--stall-after-write``);
* ``{"event": "batch", "batches", "start_seq", "last_seq", "docs_read", "docs_written"}`` after
  each batch was written and checkpointed (then it sleeps ``--pause`` seconds);
* ``{"event": "done", "result": {...}}``: the ``ReplicationResult`` of a run that reached the end.

``KioskProcess`` is the test side: it starts the child, reads its lines in a thread, waits for a
given line with a timeout, kills it with SIGKILL and collects what it acknowledged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.cases import (
    Origin,
    Person,
    Submitted,
    case_to_doc,
    event_to_doc,
    new_case,
    new_event,
    new_instance_id,
)
from core.catalogue import Mode
from core.clock import Hlc, HlcClock
from sync.database import Database, Doc
from sync.remote import RemoteDatabase
from sync.replicator import Replication, ReplicationResult, replicate
from sync.store import SQLiteStore
from tests.factories import ITEM, TOWNSHIP, VILLAGE

__all__ = [
    "ITEM",
    "KioskProcess",
    "STALL",
    "TOWNSHIP",
    "VILLAGE",
    "applicant",
    "main",
    "write_cases",
]

ROOT = Path(__file__).resolve().parent.parent


def applicant() -> Person:
    """The applicant of every stand-in case (a valid resident id and phone)."""
    return Person(name="王大爷", id_number="500109193805120013", phone="13800000000")


# --- the child ------------------------------------------------------------------------------


def _say(event: str, **fields: Any) -> None:
    """Print one JSON line and flush it: the test acts on it at once."""
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


STALL = 60.0
"""Seconds a stalled kiosk sleeps, waiting to be killed."""


class _AnnouncingTarget:
    """The replication target, announcing each ``_bulk_docs`` that returned (before the
    replicator checkpoints its batch) and stalling after the ``stall_at``-th, so a test can kill
    the kiosk between writing a batch and checkpointing it. The rest goes straight through."""

    def __init__(self, target: Database, stall_at: int) -> None:
        self._target = target
        self._stall_at = stall_at
        self._writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def bulk_docs(self, docs: Sequence[Doc], *, new_edits: bool = True) -> list[Doc]:
        answer = self._target.bulk_docs(docs, new_edits=new_edits)
        self._writes += 1
        _say("written", writes=self._writes, docs=len(docs), errors=len(answer))
        if self._writes == self._stall_at:
            time.sleep(STALL)
        return answer


def write_cases(
    store: SQLiteStore, count: int, on_ack: Callable[[str, str], None] | None = None
) -> dict[str, str]:
    """Write ``count`` cases into ``store`` as the kiosk does, each with its ``submitted``
    event; ``on_ack(id, rev)`` after each write returned. Returns ``{id: rev}`` of all."""
    written: dict[str, str] = {}

    def ack(doc: Doc) -> None:
        rev = store.put(doc)
        written[doc["_id"]] = rev
        if on_ack is not None:
            on_ack(doc["_id"], rev)

    state = store.get_local("_local/kiosk") or {
        "_id": "_local/kiosk",
        "instance": new_instance_id(),
        "counter": 0,
        "hlc": None,
    }
    origin = Origin(VILLAGE, state["instance"])
    last = Hlc.parse(state["hlc"]) if state["hlc"] else None
    clock = HlcClock(origin.key, lambda: int(time.time() * 1000), last=last)

    def reserve() -> int:
        # The counter is saved before the document that uses it: a kill in between leaves a
        # gap, never a reused id.
        state["counter"] += 1
        state["hlc"] = clock.last.encode()
        state["_rev"] = store.put_local(state)
        return int(state["counter"])

    for _ in range(count):
        case = new_case(
            origin=origin,
            counter=reserve(),
            hlc=clock.tick(),
            wall_time=datetime.now(UTC),
            author="jg.v201",
            village=VILLAGE,
            township=TOWNSHIP,
            item=ITEM,
            catalogue_version=1,
            applicant=applicant(),
            mode=Mode.AGENCY,
            handling_unit=TOWNSHIP,
        )
        ack(case_to_doc(case))
        event = new_event(
            case,
            Submitted(note="代办员已核对材料"),
            origin=origin,
            counter=reserve(),
            hlc=clock.tick(after=case.stamp),
            wall_time=datetime.now(UTC),
            author="jg.v201",
        )
        ack(event_to_doc(event))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in kiosk: write, then replicate once; 0 when the replication finished."""
    parser = argparse.ArgumentParser(prog="python -m tests.kiosk_process", description=__doc__)
    parser.add_argument("--store", required=True, help="the kiosk's SQLite store file")
    parser.add_argument("--url", required=True, help="the server, admin credentials in it")
    parser.add_argument("--db", required=True, help="the database on the server")
    parser.add_argument("--cases", type=int, default=0, help="cases to write before syncing")
    parser.add_argument("--direction", choices=("push", "pull"), default="push")
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds after each batch")
    parser.add_argument("--stall-after-batch", type=int, default=0, metavar="K")
    parser.add_argument("--stall-after-write", type=int, default=0, metavar="K")
    parser.add_argument("--timeout", type=float, default=10.0, help="HTTP socket timeout")
    args = parser.parse_args(argv)
    store = SQLiteStore(args.store)
    write_cases(store, args.cases, lambda doc_id, rev: _say("ack", id=doc_id, rev=rev))
    remote = RemoteDatabase(args.url, args.db, timeout=args.timeout)
    source: Database = store if args.direction == "push" else remote
    target: Database = remote if args.direction == "push" else store
    if args.stall_after_write:
        target = _AnnouncingTarget(target, args.stall_after_write)  # type: ignore[assignment]

    def progress(result: ReplicationResult) -> None:
        _say(
            "batch",
            batches=result.batches,
            start_seq=result.start_seq,
            last_seq=result.last_seq,
            docs_read=result.docs_read,
            docs_written=result.docs_written,
        )
        time.sleep(STALL if result.batches == args.stall_after_batch else args.pause)

    result = replicate(Replication(source, target, batch_size=args.batch_size), progress)
    _say("done", result=dataclasses.asdict(result))
    store.close()
    return 0


# --- the test side --------------------------------------------------------------------------

Message = dict[str, Any]


class KioskProcess:
    """One running ``python -m tests.kiosk_process`` child, driven by a test."""

    def __init__(
        self,
        *,
        store: Path,
        url: str,
        db: str,
        cases: int = 0,
        direction: str = "push",
        batch_size: int = 5,
        pause: float = 0.0,
        stall_after_batch: int = 0,
        stall_after_write: int = 0,
    ) -> None:
        """Start the child; its output is read in the background from now on."""
        command = [
            sys.executable,
            "-m",
            "tests.kiosk_process",
            *("--store", str(store), "--url", url, "--db", db, "--cases", str(cases)),
            *("--direction", direction, "--batch-size", str(batch_size)),
            *("--pause", str(pause), "--stall-after-batch", str(stall_after_batch)),
            *("--stall-after-write", str(stall_after_write)),
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.messages: list[Message] = []
        """Every complete JSON line the child printed, in order."""
        self.torn: list[bytes] = []
        """Lines that were not complete JSON (the last one, cut by a kill)."""
        self._queue: queue.Queue[Message | None] = queue.Queue()
        self._stderr: list[bytes] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            try:
                message = json.loads(raw)
            except ValueError:
                self.torn.append(raw)
                continue
            self.messages.append(message)
            self._queue.put(message)
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in iter(self.process.stderr.readline, b""):
            self._stderr.append(raw)

    @property
    def stderr(self) -> str:
        """What the child wrote to stderr so far."""
        return b"".join(self._stderr).decode("utf-8", "replace")

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 30.0) -> Message:
        """The first line from now on that satisfies ``predicate``; fails after ``timeout``
        seconds or if the child ends first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such line from the kiosk in {timeout}s:\n{self.stderr}")
            try:
                message = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                self.process.wait(timeout=10)
                raise AssertionError(
                    f"the kiosk ended ({self.process.returncode}) before that line:\n{self.stderr}"
                )
            if predicate(message):
                return message

    def kill(self) -> float:
        """SIGKILL the child (it must still be running) and collect its output; returns the
        seconds it had run."""
        assert self.process.poll() is None, f"the kiosk ended on its own:\n{self.stderr}"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._join()
        assert self.process.returncode == -signal.SIGKILL
        return time.monotonic() - self.started

    def finish(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the child to end by itself; return its ReplicationResult (as a dict)."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        self._join()
        assert self.process.returncode == 0, f"the kiosk failed:\n{self.stderr}"
        done = [m for m in self.messages if m["event"] == "done"]
        assert len(done) == 1, self.messages
        result: dict[str, Any] = done[0]["result"]
        return result

    def close(self) -> None:
        """Kill the child if it still runs (a test that failed half-way) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._join()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(timeout=10)

    def of(self, event: str) -> list[Message]:
        """The lines of one kind (``ack``, ``written``, ``batch``, ``done``) so far."""
        return [m for m in self.messages if m["event"] == event]

    @property
    def acknowledged(self) -> dict[str, str]:
        """``{id: rev}`` of every write the child acknowledged."""
        return {m["id"]: m["rev"] for m in self.of("ack")}


if __name__ == "__main__":
    sys.exit(main())
