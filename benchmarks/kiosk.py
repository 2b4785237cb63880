"""The village kiosk with 10,000 cases: cold start, saving a case, the cases list.

Run: ``.venv/bin/python benchmarks/kiosk.py`` (≈ 1–2 min; ``--cases``, ``--saves``, ``--lists``).

No township and no CouchDB: it builds an enrolled-looking kiosk in a temporary data folder
(``tests.kiosk_folder.build_kiosk``: ``kiosk.json`` pointing at a closed port, the demo
catalogue as one published version, one agent account) and seeds the embedded store with 10,000
cases and their ``submitted`` events, as the kiosk's own intake writes them. It then measures:

* cold start: ``sanji kiosk --data … --headless`` started as a subprocess until ``/login``
  answers 200 (process start, imports, opening the store, first page);
* saving a case through the wizard (``POST /cases/new``, ``action=save``), each with a fresh
  applicant, through ``litestar.testing.TestClient`` (the whole ASGI stack, no socket);
* ``GET /cases`` (the first request after the saves is counted like the others).

Targets: 2 s, 50 ms (p95), 200 ms (p95).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from litestar.testing import TestClient  # noqa: E402

from sync.devserver import free_port  # noqa: E402
from tests.kiosk_folder import (  # noqa: E402
    AGENT,
    CSRF,
    ITEM_CODE,
    PASSWORD,
    build_kiosk,
    random_id,
    save_form,
)
from village_node.app import create_app  # noqa: E402
from village_node.settings import Settings  # noqa: E402

TARGETS = {"cold start": 2000.0, "save a case": 50.0, "GET /cases": 200.0}


# --- the measurements ------------------------------------------------------------------------


def cold_start(data: Path) -> float:
    """Milliseconds from starting ``sanji kiosk`` to ``/login`` answering 200."""
    port = free_port()
    sanji = Path(sys.executable).with_name("sanji")
    command = [str(sanji), "kiosk", "--data", str(data), "--headless", "--port", str(port)]
    env = {**os.environ, "SANJI_KIOSK_SYNC_INTERVAL": "0"}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
                    if r.status == 200:
                        return (time.perf_counter() - started) * 1000
            except OSError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"the kiosk exited with {process.returncode}")
            if time.perf_counter() - started > 60:
                raise RuntimeError("the kiosk did not answer within 60 s")
            time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=10)


def post(client: Any, path: str, **data: str) -> Any:
    """POST a form with the CSRF token, without following redirects."""
    return client.post(
        path, data={**data, "_csrf_token": client.cookies[CSRF]}, follow_redirects=False
    )


def in_process(data: Path, saves: int, lists: int) -> tuple[list[float], list[float]]:
    """Save ``saves`` cases through the wizard, then GET /cases ``lists`` times (ms each)."""
    rng = random.Random(7)
    saved, listed = [], []
    with TestClient(create_app(Settings(data, sync_interval=0))) as client:
        client.get("/login")
        answer = post(client, "/login", username=AGENT, password=PASSWORD, next="/cases")
        assert answer.status_code in (302, 303), answer.text
        for _ in range(saves):
            page = client.get("/cases/new", params={"item": ITEM_CODE}).text
            key = re.search(r'name="intake_key" value="([0-9a-f]+)"', page)
            assert key, "the wizard carries an intake key"
            form = save_form(key[1], random_id(rng))
            started = time.perf_counter()
            answer = post(client, "/cases/new", **form)
            saved.append((time.perf_counter() - started) * 1000)
            assert answer.status_code in (302, 303), answer.text[:2000]
        for _ in range(lists):
            started = time.perf_counter()
            answer = client.get("/cases")
            listed.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200 and "张三" in answer.text
    return saved, listed


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    """Build the kiosk, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--saves", type=int, default=50)
    parser.add_argument("--lists", type=int, default=30)
    parser.add_argument("--starts", type=int, default=3, help="cold starts (median reported)")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sanji-kiosk-bench-") as folder:
        data = Path(folder) / "kiosk"
        seeded = build_kiosk(data, args.cases)
        print(f"seeded {args.cases} cases + {args.cases} events in {seeded:.1f} s", flush=True)
        starts = [cold_start(data) for _ in range(args.starts)]
        saved, listed = in_process(data, args.saves, args.lists)
        starts_after = cold_start(data)  # with the read model (if any) already built
    rows = [
        ("cold start", starts, f"median of {len(starts)}; once more after the saves: "
                               f"{starts_after:.0f} ms"),
        ("save a case", saved, f"{len(saved)} saves"),
        ("GET /cases", listed, f"{len(listed)} requests, {args.cases + args.saves} cases"),
    ]  # fmt: skip
    print()
    print("| what | p50 ms | p95 ms | max ms | target ms | |")
    print("|---|---:|---:|---:|---:|---|")
    for name, values, note in rows:
        p50, p95 = statistics.median(values), percentile(values, 95)
        verdict = "ok" if (p50 if name == "cold start" else p95) <= TARGETS[name] else "MISSED"
        print(f"| {name} | {p50:.0f} | {p95:.0f} | {max(values):.0f} | "
              f"{TARGETS[name]:.0f} | {verdict}: {note} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
