"""Every write the embedded store acknowledged survives a kill -9 of the writing process."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync.store import SQLiteStore

ROOT = Path(__file__).resolve().parents[2]

# The child writes forever, alternating single puts and small bulk writes, and prints each
# document id only after the call that stored it has returned.
CHILD = """
import sys
from sync.store import SQLiteStore

store = SQLiteStore(sys.argv[1])
start = int(sys.argv[2])
i = start
while True:
    if i % 3:
        store.put({"_id": f"doc-{i:07d}", "n": i, "pad": "x" * 300})
        print(f"doc-{i:07d}", flush=True)
        i += 1
    else:
        ids = [f"doc-{j:07d}" for j in range(i, i + 4)]
        results = store.bulk_docs([{"_id": d, "n": 0} for d in ids])
        assert all(r.get("ok") for r in results), results
        print("\\n".join(ids), flush=True)
        i += 4
"""


def _run_and_kill(path: Path, start: int, acknowledged_before_kill: int) -> list[str]:
    """Start a writer, SIGKILL it after enough acknowledgements; return every acknowledged id."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(start)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    acked: list[str] = []
    buffer = b""
    deadline = time.monotonic() + 60
    try:
        while len(acked) < acknowledged_before_kill:
            assert time.monotonic() < deadline, "the writer was too slow"
            ready, _, _ = select.select([child.stdout], [], [], 1.0)
            if not ready:
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            assert chunk, child.stderr.read().decode() if child.stderr else "writer exited"
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            acked += [line.decode() for line in lines if line]
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    # lines the child printed before it died were acknowledged too; a torn last line was not
    *lines, _torn = (buffer + rest).split(b"\n")
    acked += [line.decode() for line in lines if line]
    assert child.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize("kill_after", [1, 150, 600])
def test_acknowledged_writes_survive_kill_9(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "kiosk.sqlite"
    first = _run_and_kill(path, 0, kill_after)
    # a second writer resumes on the same file after the crash, and is killed too
    second = _run_and_kill(path, 1_000_000, kill_after)
    acked = first + second
    assert len(acked) >= 2 * kill_after

    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    with SQLiteStore(path) as store:
        stored = {row["id"] for row in store.changes()["results"]}
        lost = [doc_id for doc_id in acked if doc_id not in stored]
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
        assert store.info()["doc_count"] == len(stored) >= len(acked)
        assert store.info()["update_seq"] == len(stored)
        store.put({"_id": "after-the-crash"})
