"""The district's supervision read model, kiosk fleet and standardisation report (issue 8),
on SQLite and PostgreSQL: the projection's extension fills ``fleet_*`` and ``case_supervision``
from the `district` database's documents, and the figures are checked against hand counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
from litestar.testing import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.db.models import (
    CaseSupervision,
    CatalogueVersion,
    FleetStatus,
    KioskRegistration,
    Unit,
)
from central.services import accounts
from central.services.district_model import DistrictExtension
from central.services.fleet import FleetFilter, fleet
from central.services.standards import StandardsFilter, standards_report
from central.settings import Settings
from core.cases import (
    Accepted,
    Completed,
    Delivery,
    FollowUp,
    FollowUpStep,
    Rated,
    RatingChannel,
    Submitted,
)
from core.catalogue import Kind
from sync.memory import MemoryDatabase
from sync.projection import project, rebuild
from tests.conftest import CouchUnderTest
from tests.integration.test_projection import (
    CAL,
    OTHER_VILLAGE,
    QUICK,
    SLOW,
    TOWNSHIP,
    VILLAGE,
    World,
    at,
    item,
    person,
)

SOURCE = "district"
TODAY = date(2026, 12, 31)
NOW = datetime(2026, 12, 31, 2, 0, tzinfo=UTC)  # 10:00 in the district
NO_LEGAL = msgspec.structs.replace(item("500109SW0001", 2, Kind.BUSINESS), legal_limit_days=None)


def _units(session: Session) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    session.add(Unit(code="500109000000", name="北碚区", level="district", updated_at=now))
    session.add(
        Unit(code=TOWNSHIP, name="静观镇", level="township", parent_code="500109000000",
             updated_at=now)
    )  # fmt: skip
    for code, name in ((VILLAGE, "柑橘村"), (OTHER_VILLAGE, "腊梅村")):
        session.add(Unit(code=code, name=name, level="village", parent_code=TOWNSHIP,
                         updated_at=now))  # fmt: skip
    session.flush()
    for reg, village, revoked in (("r-good", VILLAGE, False), ("r-old", OTHER_VILLAGE, True)):
        session.add(
            KioskRegistration(
                id=reg, village_code=village, label="便民服务站", code_hash="x", issued_by="admin",
                issued_at=now, expires_at=now + timedelta(days=14),
                revoked_at=now + timedelta(days=30) if revoked else None,
                revoked_reason="电脑报废" if revoked else "",
            )
        )  # fmt: skip
    session.add(
        CatalogueVersion(version=3, fingerprint="f", item_count=2, published_at=now,
                         published_by="admin")
    )  # fmt: skip
    session.commit()


def _enrolment(db: MemoryDatabase, reg: str, village: str, instance: str) -> None:
    db.put({"_id": f"enrolment:{reg}", "type": "enrolment", "village": village,
            "township": TOWNSHIP, "registration": reg, "instance": instance,
            "username": f"kiosk.{instance}",
            "enrolled_at": "2026-12-01T01:00:00+00:00"})  # fmt: skip


def _status(db: MemoryDatabase, reg: str, village: str, instance: str, clock: datetime,
            **fields: object) -> str:  # fmt: skip
    doc_id = f"kiosk_status:{village}:{instance}"
    doc: dict[str, object] = {
        "_id": doc_id, "type": "kiosk_status", "village": village, "township": TOWNSHIP,
        "instance": instance, "registration": reg, "online": True,
        "last_success": clock.isoformat(), "last_attempt": clock.isoformat(), "last_error": "",
        "error_kind": "", "waiting": 0, "refused": 0, "catalogue_version": 3,
        "clock": clock.isoformat(), "app_version": "0.1.0", **fields,
    }  # fmt: skip
    try:
        doc["_rev"] = db.get(doc_id)["_rev"]
    except Exception:
        pass
    return db.put(doc)


def _project(db: MemoryDatabase, sessions: sessionmaker[Session], now: datetime) -> None:
    project(db, sessions, SOURCE, CAL, TODAY, extension=DistrictExtension(now))


def test_fleet_from_enrolments_and_status_documents(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        _units(session)
    db = MemoryDatabase()
    _enrolment(db, "r-good", VILLAGE, "pc-good")
    # Written 30 s before the district sees it: a correct clock.
    _status(db, "r-good", VILLAGE, "pc-good", NOW - timedelta(seconds=30), waiting=4, refused=1)
    _enrolment(db, "r-old", OTHER_VILLAGE, "pc-old")
    # Two hours ahead of the district when it arrives; holds catalogue version 2 of 3.
    _status(db, "r-old", OTHER_VILLAGE, "pc-old", NOW + timedelta(hours=2), catalogue_version=2,
            online=False, error_kind="offline", last_error="离线")  # fmt: skip
    _enrolment(db, "r-mute", VILLAGE, "pc-mute")  # enrolled, never reported
    _project(db, sessions, NOW)

    with sessions() as session:
        kiosks = {k.registration: k for k in fleet(session, FleetFilter(), now=NOW)}
        assert set(kiosks) == {"r-good", "r-old", "r-mute"}
        good, old, mute = kiosks["r-good"], kiosks["r-old"], kiosks["r-mute"]
        assert (good.village_name, good.township_name) == ("柑橘村", "静观镇")
        assert (good.waiting, good.refused, good.skew_seconds) == (4, 1, -30)
        assert not good.skewed and not good.silent and not good.stale and not good.revoked
        assert old.skew_seconds == 7200 and old.skewed and old.skew_text == "快 2.0小时"
        assert old.stale and old.revoked and old.revoked_reason == "电脑报废"
        assert not old.silent  # revoked kiosks are not reported silent
        assert not mute.has_status and mute.silent  # enrolled on Dec 1, heard of since: no

        # Filters: state, township, village prefix, text.
        def regs(wanted: FleetFilter, now: datetime = NOW) -> set[str]:
            return {k.registration for k in fleet(session, wanted, now)}

        assert regs(FleetFilter(state="skewed")) == {"r-old"}
        assert regs(FleetFilter(state="refused")) == {"r-good"}
        assert regs(FleetFilter(q="腊梅")) == {"r-old"}
        assert len(fleet(session, FleetFilter(village=VILLAGE), NOW)) == 2
        assert fleet(session, FleetFilter(township="500109001000"), NOW) == []
        # A day later with nothing new, the good kiosk is silent after 24 hours, not after 48.
        later = NOW + timedelta(hours=25)
        assert regs(FleetFilter(state="silent"), later) == {"r-good", "r-mute"}
        assert regs(FleetFilter(state="silent", silent_hours=48), later) == {"r-mute"}

    # The same revision replayed (a rebuild) keeps the time it was first seen; a new one moves.
    rebuild(db, sessions, SOURCE, CAL, TODAY, extension=DistrictExtension(NOW + timedelta(days=3)))
    with sessions() as session:
        row = session.get(FleetStatus, f"kiosk_status:{VILLAGE}:pc-good")
        assert row is not None and row.skew_seconds == -30
    _status(db, "r-good", VILLAGE, "pc-good", NOW + timedelta(hours=5), waiting=0)
    _project(db, sessions, NOW + timedelta(hours=5, seconds=10))
    with sessions() as session:
        good = next(k for k in fleet(session, FleetFilter(), NOW) if k.registration == "r-good")
        assert (good.waiting, good.skew_seconds) == (0, -10)
    # A deleted status document leaves the fleet's status (the enrolment stays).
    doc = db.get(f"kiosk_status:{VILLAGE}:pc-good")
    db.put({"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True})
    _project(db, sessions, NOW)
    with sessions() as session:
        good = next(k for k in fleet(session, FleetFilter(), NOW) if k.registration == "r-good")
        assert not good.has_status


def test_standards_report_and_case_supervision(sessions: sessionmaker[Session]) -> None:
    world = World(MemoryDatabase())
    ann = person("张三", "50010919500101001", "13800000001")
    # QUICK (promised 3, legal 20): accepted Mon Dec 7, completed Thu Dec 10 → 3 working days.
    world.open("a", at("2026-12-07", 9), ann, of=QUICK, village=None)
    world.act("a", Submitted(), at("2026-12-07", 10))
    world.act("a", Accepted(), at("2026-12-07", 11))
    world.act("a", Completed(result="已办结", delivery=Delivery.WINDOW), at("2026-12-10"))
    world.act("a", Rated(level=1, channel=RatingChannel.TOWNSHIP), at("2026-12-10", 15))
    # QUICK again: accepted Fri Dec 11, completed Mon Dec 14 → 1 working day; 差评 followed up.
    world.open("b", at("2026-12-11", 9), ann, of=QUICK, village=None)
    world.act("b", Submitted(), at("2026-12-11", 10))
    world.act("b", Accepted(), at("2026-12-11", 11))
    world.act("b", Completed(result="已办结", delivery=Delivery.WINDOW), at("2026-12-14"))
    world.act("b", Rated(level=2, channel=RatingChannel.PHONE), at("2026-12-14", 15))
    world.act("b", FollowUp(step=FollowUpStep.CLOSED, note="已回访"), at("2026-12-15"))
    # SLOW (promised 15, legal 20): accepted, not completed; rated well.
    world.open("c", at("2026-12-14", 9), ann, of=SLOW, village=None)
    world.act("c", Submitted(), at("2026-12-14", 10))
    world.act("c", Accepted(), at("2026-12-14", 11))
    _project(world.db, sessions, NOW)  # type: ignore[arg-type]

    with sessions() as session:
        rows = {r.case_id: r for r in session.scalars(select(CaseSupervision))}
        a, b, c = (rows[world.cases[n].id] for n in "abc")
        assert (a.days_taken, a.rating_level, a.bad_rating, a.follow_up) == (3, 1, True, "open")
        # No deadline set by staff: 10 working days after the rating (Dec 10 → Dec 24).
        assert a.follow_up_deadline == date(2026, 12, 24)
        assert (b.days_taken, b.follow_up, b.completed_on) == (1, "closed", date(2026, 12, 14))
        assert (c.days_taken, c.rating_level, c.follow_up, c.promised_days) == (None, None, "", 15)

        report, total = standards_report(session, [QUICK, SLOW, NO_LEGAL], StandardsFilter())
        by_code = {r.code: r for r in report}
        assert [r.code for r in report] == [QUICK.code, NO_LEGAL.code, SLOW.code]
        assert (by_code[QUICK.code].saved_days, by_code[QUICK.code].completed) == (17, 2)
        assert by_code[QUICK.code].average_days == 2.0
        assert by_code[SLOW.code].average_days is None and by_code[SLOW.code].saved_days == 5
        assert by_code[NO_LEGAL.code].saved_days is None
        assert (total.items, total.items_with_legal, total.legal_days, total.promised_days) == (
            3, 2, 40, 18)  # fmt: skip
        assert total.saved_days == 22 and total.compression == 22 / 40
        assert (total.completed, total.average_days) == (2, 2.0)
        # Filters: by kind, text and period of completion.
        life, _ = standards_report(session, [QUICK, SLOW], StandardsFilter(kind="life"))
        assert [r.code for r in life] == [SLOW.code]
        _, late = standards_report(
            session, [QUICK, SLOW], StandardsFilter(completed_from=date(2026, 12, 11))
        )
        assert (late.completed, late.average_days) == (1, 1.0)
        found, _ = standards_report(session, [QUICK, SLOW], StandardsFilter(q="ZW0004"))
        assert [r.code for r in found] == [QUICK.code]


def test_fleet_and_standards_pages(
    database_url: str, sessions: sessionmaker[Session], couch_server: CouchUnderTest
) -> None:
    with sessions() as session:
        _units(session)
        accounts.create_account(
            session, "admin", "管理员", "district_admin", "500109000000", "admin-pass-1"
        )
    db = MemoryDatabase()
    _enrolment(db, "r-good", VILLAGE, "pc-good")
    _status(db, "r-good", VILLAGE, "pc-good", datetime.now(UTC) + timedelta(hours=3), refused=2)
    _enrolment(db, "r-old", OTHER_VILLAGE, "pc-old")
    _project(db, sessions, datetime.now(UTC))
    app = create_app(Settings(database_url=database_url, couchdb_url=couch_server.url))
    with TestClient(app) as client:
        assert client.get("/fleet", follow_redirects=False).status_code in (302, 303, 401)
        client.get("/login")
        client.post(
            "/login",
            data={"username": "admin", "password": "admin-pass-1", "next": "/",
                  "_csrf_token": client.cookies["sanji_csrf"]},
        )  # fmt: skip
        page = client.get("/fleet")
        assert page.status_code == 200
        assert "柑橘村" in page.text and "腊梅村" in page.text and "快 3.0小时" in page.text
        assert 'class="silent"' not in page.text
        skewed = client.get("/fleet", params={"show": "skewed"}).text
        assert "r-good" in skewed and "r-old" not in skewed
        assert "r-old" in client.get("/fleet", params={"q": "腊梅"}).text
        assert "r-good" not in client.get("/fleet", params={"q": "腊梅"}).text
        standards = client.get("/standards", params={"kind": "life", "completed_from": "bad"})
        assert standards.status_code == 200 and "还没有发布过事项目录" in standards.text
