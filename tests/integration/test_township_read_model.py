"""A township node follows its `township` database into its own SQL read model."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.cases import Origin, Person, case_to_doc, new_case
from core.catalogue import CatalogueItem, HandlingLevel, Kind, Mode
from core.clock import HlcClock
from sync.couch import connect, ensure_database, save_document
from sync.readmodel import CaseRow
from sync.sql import make_engine, make_sessionmaker
from tests.conftest import CouchUnderTest
from tests.sql import throwaway_database
from township import db as township_db
from township.read_model import project_township

ROOT = Path(__file__).resolve().parents[2]
ITEM = CatalogueItem(
    code="500109ZW0010",
    name="最低生活保障申请",
    kind=Kind.GOVERNMENT,
    handling_level=HandlingLevel.TOWNSHIP,
    modes=(Mode.AGENCY,),
    department="区民政局",
    legal_limit_days=30,
    promised_limit_days=20,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A township database of each kind, built by its migrations."""
    with throwaway_database(request.param, tmp_path) as url:
        township_db.migrate(url)
        engine = make_engine(url)
        yield make_sessionmaker(engine)
        engine.dispose()


def _case(counter: int) -> dict[str, object]:
    origin = Origin("500109110202", "w4n8k2pd")
    case = new_case(
        origin=origin,
        counter=counter,
        hlc=HlcClock(origin.key, lambda: 1_796_000_000_000 + counter).tick(),
        wall_time=datetime(2026, 11, 30, 3, counter, tzinfo=UTC),
        author="jg.v202",
        village="500109110202",
        township="500109110000",
        item=ITEM,
        catalogue_version=1,
        applicant=Person(name=f"李{counter}", id_number="500109194501010020", phone="13900000000"),
        mode=Mode.AGENCY,
        handling_unit="500109110000",
    )
    return case_to_doc(case)


def test_the_township_read_model_follows_its_database(
    sessions: sessionmaker[Session], couch_server: CouchUnderTest
) -> None:
    server = connect(couch_server.url)
    for name in ("township", "settings"):
        if name in server:
            del server[name]
    assert project_township(sessions, server) is None  # not set up yet: nothing breaks
    township = ensure_database(server, "township")
    save_document(
        ensure_database(server, "settings"),
        {
            "_id": "settings:district",
            "type": "settings",
            "calendar": {"exceptions": [], "announced_years": []},
            "sla": {"yellow_remaining_days": 3, "yellow_elapsed_ratio": 0.7},
        },
    )
    first, second = _case(1), _case(2)
    save_document(township, first)
    result = project_township(sessions, server)
    assert result is not None and result.cases_projected == 1
    save_document(township, second)
    again = project_township(sessions, server)
    assert again is not None and again.cases_projected == 1
    with sessions() as session:
        rows = {row.case_id: row for row in session.query(CaseRow)}
    assert set(rows) == {first["_id"], second["_id"]}
    assert rows[first["_id"]].applicant_id_masked == "500109********0020"
    couch_server.check_alive()


def test_the_project_command_catches_up_once(couch_server: CouchUnderTest, tmp_path: Path) -> None:
    server = connect(couch_server.url)
    township = server["township"] if "township" in server else ensure_database(server, "township")
    save_document(township, _case(3))
    database = f"sqlite:///{tmp_path / 'township.sqlite'}"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "sanji_cli",
            "township",
            "project",
            "--code",
            "500109110000",
            "--once",
        ],
        cwd=ROOT,
        env={
            "COUCHDB_URL": couch_server.url,
            "TOWNSHIP_DATABASE_URL": database,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "读模型" in run.stdout
    with make_sessionmaker(make_engine(database))() as session:
        assert session.query(CaseRow).count() >= 1
