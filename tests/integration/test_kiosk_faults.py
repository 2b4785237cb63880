"""The village kiosk under faults (issue 4, "Bad input and faults"): killed during a save, and
its township unreachable for a week.

1. The real ``sanji kiosk --headless`` program on an enrolled-looking data folder
   (``tests.kiosk_folder``) is SIGKILLed while an agent keeps saving cases over HTTP, three times
   over; after each restart every case it acknowledged is there, counters go on, and the form
   that was in flight, posted again, makes exactly one case.
2. A kiosk enrolled with the real township node (the network of ``test_kiosk``: district and
   township pouchdb-servers set up by ``sync.topology``) loses its township for a week of
   intake, then one sync sends it all up.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from sync.couch import couch_errors
from sync.devserver import free_port
from sync.store import SQLiteStore
from sync.topology import village_database
from tests.integration import test_kiosk as base
from tests.integration.test_kiosk import CODE, Network, form, login
from tests.kiosk_folder import (
    AGENT,
    CSRF,
    ITEM_CODE,
    PASSWORD,
    build_kiosk,
    random_id,
    save_form,
)
from tests.waiting import poll
from village_node.app import create_app
from village_node.settings import Settings, load_enrolment, save_enrolment
from village_node.syncing import OFFLINE, OFFLINE_MESSAGE, status_id

net = base.net  # the network of test_kiosk (only the second test uses it), built afresh here

SANJI = Path(sys.executable).with_name("sanji")
RECEIPT = re.compile(r"^/cases/([^/]+)/receipt$")
INTAKE_KEY = re.compile(r'name="intake_key" value="([0-9a-f]+)"')
ALREADY_SAVED = "该表单已提交过"


def receipt_number(answer: httpx.Response) -> str:
    """The case number a successful save redirected to (fails on anything else)."""
    location = answer.headers.get("location", "")
    found = RECEIPT.match(location)
    assert answer.status_code in (302, 303) and found, (answer.status_code, answer.text[:2000])
    return found[1]


def counter_of(number: str) -> int:
    """The kiosk's document counter a case number carries (``…-K7F3A9-0012``)."""
    return int(number.rsplit("-", 1)[1])


# --- 1. killed during a save -----------------------------------------------------------------


class KioskProgram:
    """One ``sanji kiosk --headless`` process on a data folder, with an HTTP client."""

    def __init__(self, data: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(SANJI), "kiosk", "--data", str(data), "--headless", "--port", str(self.port)],
                env={**os.environ, "SANJI_KIOSK_SYNC_INTERVAL": "0"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=15)
        try:
            poll(self._answers, "the kiosk to answer /login", timeout=30)
        except BaseException:
            self.close()
            raise

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the kiosk exited ({self.process.returncode}):\n{self.log.read_text()}")
        try:
            return self.client.get("/login").status_code == 200
        except httpx.TransportError:
            return False

    def post(self, path: str, **data: str) -> httpx.Response:
        """POST a form with the CSRF token, without following redirects."""
        return self.client.post(path, data={**data, "_csrf_token": self.client.cookies[CSRF]})

    def login(self) -> None:
        """Log the agent in (offline: the township is a closed port)."""
        answer = self.post("/login", username=AGENT, password=PASSWORD, next="/cases")
        assert answer.status_code in (302, 303), answer.text[:2000]

    def new_form(self, rng: random.Random) -> dict[str, str]:
        """The wizard's save form, its intake key from a fresh ``GET /cases/new``."""
        page = self.client.get("/cases/new", params={"item": ITEM_CODE})
        key = INTAKE_KEY.search(page.text)
        assert page.status_code == 200 and key, page.text[:2000]
        return save_form(key[1], random_id(rng))

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, nothing of the process's own runs any more."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def close(self) -> None:
        """Stop the kiosk as its window would (SIGTERM), or kill it if it hangs."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class Saver:
    """The agent at the kiosk: saves case after case until the kiosk dies under it."""

    kiosk: KioskProgram
    rng: random.Random
    acked: list[dict[str, str]] = field(default_factory=list)
    """The forms the kiosk acknowledged, each with the ``number`` it redirected to."""
    in_flight: dict[str, str] | None = None
    """The form posted but not answered (None while between saves)."""
    posting: threading.Event = field(default_factory=threading.Event)
    latencies: list[float] = field(default_factory=list)
    failure: BaseException | None = None

    def saved(self, count: int) -> bool:
        """At least ``count`` saves acknowledged, or the saver failed."""
        return len(self.acked) >= count or self.failure is not None

    def run(self) -> None:
        """Save until the kiosk stops answering."""
        try:
            while True:
                posted = self.kiosk.new_form(self.rng)
                self.in_flight = posted
                self.posting.set()
                started = time.perf_counter()
                answer = self.kiosk.post("/cases/new", **posted)
                self.latencies.append(time.perf_counter() - started)
                self.acked.append({**posted, "number": receipt_number(answer)})
                self.in_flight = None
        except httpx.TransportError:
            return  # killed
        except BaseException as exc:  # seen by the test
            self.failure = exc


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_a_kiosk_killed_during_saves_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "kiosk"
    build_kiosk(data, cases=20)
    log = tmp_path / "kiosk.log"
    rng = random.Random(4)
    acked: list[dict[str, str]] = []  # every acknowledged save, all rounds
    resolved: list[dict[str, str]] = []  # in-flight forms posted again after the restart
    after_restart: list[tuple[int, str]] = []  # (highest counter before the kill, new number)
    outcomes: list[str] = []
    kiosk = KioskProgram(data, log)
    try:
        kiosk.login()
        # Kill at the start of a POST, and about half-way and near the end of a typical save,
        # so the kill lands before, during and after the store's commit.
        for fraction in (0.0, 0.5, 0.8):
            saver = Saver(kiosk, rng)
            thread = threading.Thread(target=saver.run, daemon=True)
            thread.start()
            poll(partial(saver.saved, 15), "15 acknowledged saves")
            assert saver.failure is None, saver.failure
            saver.posting.clear()
            assert saver.posting.wait(10), "another save posted"
            time.sleep(fraction * statistics.median(saver.latencies))
            kiosk.kill()
            thread.join(timeout=20)
            assert not thread.is_alive() and saver.failure is None, saver.failure
            kiosk.close()
            assert _integrity(data / "store.sqlite3") == "ok"
            acked += saver.acked
            highest = max(counter_of(s["number"]) for s in acked)

            kiosk = KioskProgram(data, log)
            kiosk.login()
            listed = kiosk.client.get("/cases").text
            for saved in acked:
                assert saved["number"] in listed, f"acknowledged {saved['number']} not listed"
                receipt = kiosk.client.get(f"/cases/{saved['number']}/receipt")
                assert receipt.status_code == 200 and saved["number"] in receipt.text
            if saver.in_flight is not None:
                # Posted again as the agent would (same form, same intake key, new session).
                again = kiosk.post("/cases/new", **saver.in_flight)
                number = receipt_number(again)
                shown = kiosk.client.get(again.headers["location"]).text
                outcomes.append("already saved" if ALREADY_SAVED in shown else "saved now")
                resolved.append({**saver.in_flight, "number": number})
            else:
                outcomes.append("killed between saves")
            fresh = kiosk.post("/cases/new", **kiosk.new_form(rng))
            after_restart.append((highest, receipt_number(fresh)))
    finally:
        kiosk.close()

    print("in-flight saves after the kills:", outcomes)  # shown with -s
    assert any(o != "killed between saves" for o in outcomes), outcomes
    assert _integrity(data / "store.sqlite3") == "ok"
    with SQLiteStore(data / "store.sqlite3") as store:
        docs = [r["doc"] for r in store.changes(include_docs=True)["results"]]
    cases = {d["case_number"]: d for d in docs if d.get("type") == "case"}
    events = [d for d in docs if d.get("type") == "case_event"]
    submitted = Counter(e["case_id"] for e in events if e["kind"] == "submitted")
    for saved in acked + resolved:
        case = cases.get(saved["number"])
        assert case is not None, f"{saved['number']} was acknowledged and is gone"
        assert case["applicant"]["id_number"] == saved["p_id"]
        assert submitted[case["_id"]] == 1, f"{saved['number']} has no single submitted event"
    # Every case written once (no id reused, nothing overwritten), every applicant once: the
    # in-flight forms posted again made exactly one case each.
    assert all(c["_rev"].startswith("1-") for c in cases.values())
    applicants = Counter(c["applicant"]["id_number"] for c in cases.values())
    assert applicants.most_common(1)[0][1] == 1, applicants.most_common(3)
    counters = [d["counter"] for d in docs if d.get("type") in ("case", "case_event")]
    assert len(counters) == len(set(counters)), "a document counter was used twice"
    for highest, number in after_restart:
        assert number in cases and counter_of(number) > highest
    assert "Traceback" not in log.read_text()


# --- 2. the township away for a week ---------------------------------------------------------
# The kiosk's clock cannot be moved without hacks, so "a week" is represented by its volume (200
# cases with their events, seven days of a busy village) and by the failed-attempt history (three
# failed syncs a day: the backoff grows to the sync interval and stays there), not by wall time.

DAYS, CASES_PER_DAY, ATTEMPTS_PER_DAY = 7, (29, 29, 29, 29, 28, 28, 28), 3
INTERVAL = 300.0  # the kiosk's default sync interval


def _point_at(net: Network, couch_url: str) -> None:
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    save_enrolment(net.settings, dataclasses.replace(enrolment, couch_url=couch_url))


def _save(client: TestClient[Litestar], rng: random.Random, seen: set[str]) -> str:
    """Save one case through the wizard (a fresh applicant and intake key); its number."""
    page = client.get("/cases/new", params={"item": ITEM_CODE}).text
    key = INTAKE_KEY.search(page)
    assert key, page[:2000]
    applicant = random_id(rng)
    while applicant in seen:
        applicant = random_id(rng)
    seen.add(applicant)
    return receipt_number(form(client, "/cases/new", **save_form(key[1], applicant)))


def _ids(db: Any) -> set[str]:
    with couch_errors():
        return set(db)


def test_a_week_without_the_township_then_one_sync_sends_it_all(net: Network) -> None:
    c = net.client
    c.get("/enrol")
    enrolled = form(c, "/enrol", township_url=net.endpoint, village=base.A, code=CODE)
    assert enrolled.headers["location"] == "/login"
    enrolment = load_enrolment(net.settings)
    assert enrolment is not None
    good_url = enrolment.couch_url
    _point_at(net, f"http://127.0.0.1:{free_port()}/")
    rng = random.Random(7)
    seen: set[str] = set()
    numbers: list[str] = []
    try:
        settings: Settings = dataclasses.replace(net.settings, sync_interval=INTERVAL)
        with TestClient(create_app(settings)) as kiosk:
            syncer = kiosk.app.state.kiosk.syncer
            store = kiosk.app.state.kiosk.store
            assert syncer.retry_max == INTERVAL and syncer.waiting() == 0
            assert login(kiosk).status_code in (302, 303)  # offline login
            failures = syncer.state().failures
            for day in range(DAYS):
                numbers += [_save(kiosk, rng, seen) for _ in range(CASES_PER_DAY[day])]
                for attempt in range(ATTEMPTS_PER_DAY):
                    if attempt == 0:  # the agent presses 同步; later ones are the background's
                        answer = form(kiosk, "/sync", back="/cases")
                        assert answer.headers["location"] == "/cases"
                        state = syncer.state()
                    else:  # (run returns None while the background task itself is syncing)
                        state = poll(syncer.run, "a sync attempt")
                    assert state.failures > failures, "the attempt did not fail"
                    failures = state.failures
                    assert state.online is False and state.error_kind == OFFLINE
                    assert state.last_error == OFFLINE_MESSAGE
                    expected = min(syncer.retry_first * 2 ** (failures - 1), INTERVAL)
                    assert state.retry_delay == expected <= syncer.retry_max
                    assert 0 < state.retry_in() <= INTERVAL
                written = 2 * len(numbers)  # each case and its submitted event
                page = kiosk.get("/cases").text
                assert f'id="waiting">{written}<' in page, f"day {day + 1}"
                assert 'id="link">离线' in page and OFFLINE_MESSAGE in page
                status = store.get(status_id(enrolment))
                assert (status["online"], status["waiting"]) == (False, written)
            assert failures >= DAYS * ATTEMPTS_PER_DAY
            assert syncer.state().retry_delay == INTERVAL  # capped for most of the week
            assert len(set(numbers)) == sum(CASES_PER_DAY)

            # The township is back: one sync sends the week up.
            _point_at(net, good_url)
            state = syncer.run()
            if state is None:  # the background probe saw the link first and is syncing
                poll(lambda: not syncer.busy, "the background sync")
                state = syncer.state()
            assert state.online is True and state.error_kind == "" and state.failures == 0
            assert state.pushed >= written and syncer.waiting() == 0
            page = kiosk.get("/cases").text
            assert 'id="waiting">0<' in page and 'id="link">在线' in page
            status = store.get(status_id(enrolment))
            assert status["online"] is True and status["waiting"] == 0
            assert status["last_error"] == "" and status["last_success"] == state.last_success
            ours = {
                r["id"]
                for r in store.changes()["results"]
                if r["id"].startswith(("case:", "case_event:"))
            }
    finally:
        _point_at(net, good_url)
    assert len(ours) == written
    village = village_database(base.A)
    assert ours <= _ids(net.t[village]), "the sync left documents behind"
    # The township node's continuous replication carries them on into the township database.
    poll(lambda: ours <= _ids(net.t["township"]), "the week's cases in the township database")
    with couch_errors():
        reported = net.t[village].get(status_id(enrolment))
    assert reported is not None and reported["error_kind"] == OFFLINE  # the week, as reported
    net.district.check_alive()
    net.township.check_alive()
