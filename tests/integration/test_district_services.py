"""District services against real SQL (SQLite and PostgreSQL) and a real pouchdb-server."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.db.models import CatalogueVersion, OutboxDoc, Unit
from central.services import accounts, catalogue, district_settings, hierarchy, kiosks, outbox
from central.services.catalogue import parse_item
from central.services.publish import manifest_doc_id, publish, restore_published
from central.services.read_model import project_district
from central.services.resync import resync_directory
from core.cases import Origin, Person, case_to_doc, new_case
from core.catalogue import Mode
from core.clock import HlcClock
from core.errors import Conflict, InvalidInput
from sync.couch import connect, ensure_database, save_document
from sync.errors import CouchRejected
from sync.readmodel import CaseRow
from tests.conftest import CouchUnderTest

CLOSED_PORT_URL = "http://admin:x@127.0.0.1:9/"


def _seed(session: Session) -> None:
    hierarchy.add_unit(session, "500109000000", "北碚区")
    hierarchy.add_unit(session, "500109110000", "静观镇")
    hierarchy.add_unit(session, "500109110201", "示例村（演示）")


def _item(code: str, name: str, **extra: object) -> dict[str, object]:
    return {
        "code": code,
        "name": name,
        "kind": "government",
        "handling_level": "township",
        "modes": ["agency"],
        "department": "北碚区民政局",
        "legal_limit_days": 20,
        "promised_limit_days": 10,
        "materials": [{"key": "id_card", "name": "身份证"}],
        **extra,
    }


@pytest.fixture
def couch_url(couch_server: CouchUnderTest) -> str:
    """The module's CouchDB, with the databases the district writes emptied before each test."""
    server = connect(couch_server.url)
    for name in ("directory", "settings", "catalogue", "district"):
        if name in server:
            del server[name]
    return couch_server.url


def test_changes_wait_in_the_outbox_while_couchdb_is_down(
    sessions: sessionmaker[Session], couch_url: str
) -> None:
    with sessions() as session:
        _seed(session)
        accounts.create_account(
            session, "jg.v201", "李代办", "village_agent", "500109110201", "secret-pass-1"
        )
    assert outbox.flush(sessions, lambda: connect(CLOSED_PORT_URL, timeout=2)) == 0
    with sessions() as session:
        rows = session.scalars(select(OutboxDoc).order_by(OutboxDoc.id)).all()
        assert len(rows) == 4
        assert rows[0].attempts == 1 and "unreachable" in rows[0].last_error

    assert outbox.flush(sessions, lambda: connect(couch_url)) == 4
    directory = connect(couch_url)["directory"]
    doc = directory["account:jg.v201"]
    assert doc["role"] == "village_agent" and doc["village"] == "500109110201"
    assert doc["township"] == "500109110000"
    assert doc["password_hash"].startswith("$argon2id$")
    assert "secret-pass-1" not in str(dict(doc))
    assert directory["unit:500109110201"]["parent"] == "500109110000"
    with sessions() as session:
        assert outbox.pending_count(session) == 0


def test_only_the_newest_body_of_a_document_is_written(
    sessions: sessionmaker[Session], couch_url: str
) -> None:
    with sessions() as session:
        _seed(session)
        accounts.create_account(
            session, "ts.chen", "陈", "township_staff", "500109110000", "pw-123456"
        )
        accounts.set_disabled(session, "ts.chen", True)
    outbox.flush(sessions, lambda: connect(couch_url))
    doc = connect(couch_url)["directory"]["account:ts.chen"]
    assert doc["disabled"] is True
    assert doc["_rev"].startswith("1-")


def test_a_failed_publish_leaves_the_previous_version_whole(
    sessions: sessionmaker[Session], couch_url: str
) -> None:
    server = connect(couch_url)
    with sessions() as session:
        catalogue.create_item(session, _item("500109ZW0001", "高龄津贴申请"), "admin")
        catalogue.create_item(session, _item("500109ZW0002", "残疾人两项补贴"), "admin")
        first = publish(session, server, "admin")
    assert first.created and first.version == 1

    # A design document on the catalogue database refuses one item, so the next publish
    # fails half-way through writing its item documents.
    save_document(
        ensure_database(server, "catalogue"),
        {
            "_id": "_design/refuse",
            "validate_doc_update": (
                "function (doc) { if (doc.name === '拒收事项') { throw({forbidden: 'refused'}); } }"
            ),
        },
    )
    with sessions() as session:
        catalogue.update_item(session, "500109ZW0002", _item("500109ZW0002", "拒收事项"), "admin")
        with pytest.raises(CouchRejected):
            publish(session, server, "admin")
    with sessions() as session:
        versions = session.scalars(select(CatalogueVersion.version)).all()
    assert versions == [1]
    db = server["catalogue"]
    assert manifest_doc_id(2) not in db
    manifest = db[manifest_doc_id(1)]
    assert [i["code"] for i in manifest["items"]] == ["500109ZW0001", "500109ZW0002"]
    assert db[manifest["items"][1]["doc"]]["name"] == "残疾人两项补贴"

    db.delete(db["_design/refuse"])
    with sessions() as session:
        second = publish(session, server, "admin")
        again = publish(session, server, "admin")
    assert (second.version, second.created) == (2, True)
    assert (again.version, again.created) == (2, False)
    assert db[db[manifest_doc_id(2)]["items"][1]["doc"]]["name"] == "拒收事项"


def test_retired_items_leave_the_next_version(
    sessions: sessionmaker[Session], couch_url: str
) -> None:
    server = connect(couch_url)
    with sessions() as session:
        catalogue.create_item(session, _item("500109SH0001", "快递代收代投"), "admin")
        catalogue.create_item(session, _item("500109SH0002", "水电气代缴"), "admin")
        publish(session, server, "admin")
        catalogue.set_retired(session, "500109SH0001", True, "admin")
        result = publish(session, server, "admin")
        assert [r.code for r in catalogue.list_items(session, status="retired")] == ["500109SH0001"]
    manifest = server["catalogue"][manifest_doc_id(result.version)]
    assert [i["code"] for i in manifest["items"]] == ["500109SH0002"]


def test_csv_import_is_all_or_nothing(db: Session) -> None:
    _seed(db)
    bad = "code,name,parent\n500109110202,示例二村,500109110000\n5001091102X3,坏行,500109110000\n"
    with pytest.raises(InvalidInput) as failure:
        hierarchy.import_units_csv(db, bad.encode())
    assert any("第3行" in e.message for e in failure.value.errors)
    assert db.get(Unit, "500109110202") is None

    good = "区划代码,名称,上级代码\n500109110202,示例二村,500109110000\n500109110203,示例三村,\n"
    assert len(hierarchy.import_units_csv(db, good.encode())) == 2
    assert hierarchy.import_units_csv(db, good.encode()) == []  # the same file again adds nothing
    with pytest.raises(InvalidInput):
        hierarchy.import_units_csv(db, "code,name,parent\n500109110202,另一个名字,\n".encode())
    with pytest.raises(InvalidInput) as missing_parent:
        hierarchy.import_units_csv(db, b"code,name,parent\n500109105201,Village,\n")
    assert "500109105000" in missing_parent.value.errors[0].message


def test_duplicate_codes_conflict(db: Session) -> None:
    _seed(db)
    with pytest.raises(Conflict):
        hierarchy.add_unit(db, "500109110201", "重复")
    catalogue.create_item(db, _item("500109ZW0001", "高龄津贴申请"), "admin")
    with pytest.raises(Conflict):
        catalogue.create_item(db, _item("500109ZW0001", "又一个"), "admin")


def test_accounts_bind_roles_to_units_of_their_level(db: Session) -> None:
    _seed(db)
    with pytest.raises(InvalidInput) as wrong:
        accounts.create_account(db, "jg.zhang", "张", "village_agent", "500109110000", "pw-123456")
    assert wrong.value.errors[0].field == "unit_code"
    account = accounts.create_account(
        db, "jg.zhang", "张", "township_head", "500109110000", "pw-123456"
    )
    assert accounts.authenticate(db, "JG.Zhang", "pw-123456") is not None
    accounts.set_disabled(db, account.username, True)
    assert accounts.authenticate(db, "jg.zhang", "pw-123456") is None
    accounts.set_disabled(db, account.username, False)
    _, temporary = accounts.reset_password(db, "jg.zhang")
    assert accounts.authenticate(db, "jg.zhang", "pw-123456") is None
    assert accounts.authenticate(db, "jg.zhang", temporary).must_change_password  # type: ignore[union-attr]


def test_kiosk_status_follows_enrolment_documents(db: Session) -> None:
    _seed(db)
    reg, code = kiosks.issue_code(db, "500109110201", "村委会电脑", "admin", days=14)
    assert len(code) == 14 and code.count("-") == 2
    with pytest.raises(InvalidInput):
        kiosks.issue_code(db, "500109110000", "镇上电脑", "admin", days=14)
    assert [v.status for v in kiosks.list_kiosks(db, {})] == ["pending"]
    enrolled = {reg.id: {"registration": reg.id, "enrolled_at": "2026-11-28T10:00:00+08:00"}}
    view = kiosks.list_kiosks(db, enrolled)[0]
    assert (view.status, view.enrolled_at) == ("enrolled", "2026-11-28T10:00:00+08:00")
    kiosks.revoke(db, reg.id, "电脑被盗")
    assert kiosks.list_kiosks(db, enrolled, status="revoked")[0].status_label == "已吊销"
    with pytest.raises(Conflict):
        kiosks.revoke(db, reg.id, "again")


def test_settings_document_and_provisional_years(
    sessions: sessionmaker[Session], couch_url: str
) -> None:
    with sessions() as session:
        catalogue.create_item(
            session, _item("500109ZW0009", "最低生活保障申请", legal_limit_days=30), "admin"
        )
        assert district_settings.provisional_years_in_use(session, date(2026, 11, 28)) == (2027,)
        assert district_settings.provisional_years_in_use(session, date(2026, 6, 1)) == ()
        district_settings.add_exception(session, "2027-02-20", True, "春节调休上班")
        with pytest.raises(Conflict):
            district_settings.add_exception(session, "2027-02-20", False, "重复")
        with pytest.raises(InvalidInput):
            district_settings.add_exception(session, "2027-13-01", False, "")
        district_settings.set_year_announced(session, 2027, True, "admin")
        district_settings.set_sla_thresholds(session, 3, 0.75)
        assert district_settings.provisional_years_in_use(session, date(2026, 11, 28)) == ()
        with pytest.raises(InvalidInput):
            district_settings.set_year_announced(session, 2026, True, "admin")
        with pytest.raises(InvalidInput):
            district_settings.set_sla_thresholds(session, -1, 0.75)
    outbox.flush(sessions, lambda: connect(couch_url))
    doc = connect(couch_url)["settings"]["settings:district"]
    assert doc["type"] == "settings"
    assert doc["calendar"]["announced_years"] == [2027]
    assert doc["calendar"]["exceptions"][0]["day"] == "2027-02-20"
    assert doc["sla"] == {"yellow_remaining_days": 3, "yellow_elapsed_ratio": 0.75}


def test_resync_rewrites_what_couchdb_lost(sessions: sessionmaker[Session], couch_url: str) -> None:
    server = connect(couch_url)
    with sessions() as session:
        _seed(session)
        catalogue.create_item(session, _item("500109ZW0001", "高龄津贴申请"), "admin")
        publish(session, server, "admin")
    outbox.flush(sessions, lambda: server)
    with sessions() as session:
        assert resync_directory(session, server) == 1  # the default settings, never written yet
        assert resync_directory(session, server) == 0  # nothing lost: nothing written
        assert restore_published(session, server) == "intact"
    for name in ("directory", "settings", "catalogue"):
        del server[name]
    with sessions() as session:
        assert resync_directory(session, server) == 4  # three units and the settings
        assert restore_published(session, server) == "rewritten"
        assert resync_directory(session, server) == 0
    assert server["directory"]["unit:500109110201"]["parent"] == "500109110000"
    manifest = server["catalogue"][manifest_doc_id(1)]
    assert [i["code"] for i in manifest["items"]] == ["500109ZW0001"]
    del server["catalogue"]
    with sessions() as session:
        catalogue.set_retired(session, "500109ZW0001", True, "admin")
        assert restore_published(session, server) == "changed"


def test_the_district_read_model_follows_the_district_database(
    sessions: sessionmaker[Session], couch_url: str
) -> None:
    server = connect(couch_url)
    assert project_district(sessions, server) is None  # no `district` database yet: no harm
    item = parse_item(_item("500109ZW0004", "高龄津贴申请"))
    origin = Origin("500109110201", "k7f3a9xq")
    clock = HlcClock(origin.key, lambda: 1_796_000_000_000)
    case = new_case(
        origin=origin,
        counter=1,
        hlc=clock.tick(),
        wall_time=datetime(2026, 11, 30, 2, 0, tzinfo=UTC),
        author="jg.v201",
        village="500109110201",
        township="500109110000",
        item=item,
        catalogue_version=1,
        applicant=Person(name="王大爷", id_number="500109193805120013", phone="13800000000"),
        mode=Mode.AGENCY,
        handling_unit="500109110000",
    )
    save_document(ensure_database(server, "district"), case_to_doc(case))
    result = project_district(sessions, server)
    assert result is not None and result.cases_projected == 1
    with sessions() as session:
        row = session.get(CaseRow, case.id)
        assert row is not None and row.applicant_id_masked == "500109********0013"
        assert row.kind == "government" and row.village == "500109110201"
