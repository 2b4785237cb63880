"""The three-tier topology on two real servers: a district and one township pouchdb-server.

Set-up is idempotent; cases travel village → township → district and events back down
through the servers' own continuous replications; catalogue, settings and the village's agents
reach the village database; a kiosk's user is confined to its village database; revocation
removes it; ``sanji sync status`` sees every replication.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import couchdb
import pytest

from sanji_cli import main
from sync.couch import connect, couch_errors, save_document
from sync.devserver import PouchServer
from sync.errors import CouchRejected, DocNotFound
from sync.remote import RemoteDatabase
from sync.status import replication_status
from sync.topology import (
    EnrolmentRefused,
    KioskCredentials,
    add_node,
    apply_revocations,
    enrol_kiosk,
    node_username,
    setup_district,
    setup_township,
    village_database,
)
from tests.waiting import poll

DISTRICT = "500109000000"
T = "500109102000"  # the township under test
A = "500109102001"  # its villages
B = "500109102002"
A2 = "500109102003"  # appears in the directory later
U = "500109103000"  # another township, with village C
C = "500109103001"
REG_A1 = f"{A}-aa11bb22"
REG_A2 = f"{A}-cc33dd44"
REG_B1 = f"{B}-ee55ff66"
REG_REVOKED = f"{A}-99999999"


def _unit(code: str, level: str, township: str | None, village: str | None) -> dict[str, Any]:
    return {"_id": f"unit:{code}", "type": "unit", "code": code, "name": f"单位{code[-3:]}",
            "level": level, "township": township, "village": village}  # fmt: skip


def _account(name: str, role: str, unit: str, township: str | None, village: str | None) -> dict:
    return {"_id": f"account:{name}", "type": "account", "username": name, "role": role,
            "unit": unit, "password_hash": f"hash-of-{name}", "disabled": False,
            "township": township, "village": village}  # fmt: skip


def _registration(reg: str, village: str, revoked: bool = False) -> dict[str, Any]:
    return {"_id": f"kiosk_registration:{reg}", "type": "kiosk_registration",
            "registration": reg, "code_hash": "x", "revoked": revoked,
            "township": village[:9] + "000", "village": village}  # fmt: skip


def _case(village: str, instance: str, counter: int) -> dict[str, Any]:
    return {"_id": f"case:{village}:{instance}:{counter:08d}", "type": "case",
            "schema_version": 1, "village": village, "township": village[:9] + "000",
            "origin": {"unit": village, "instance": instance}, "counter": counter}  # fmt: skip


def _event(case: dict[str, Any], unit: str, instance: str, counter: int) -> dict[str, Any]:
    return {"_id": f"case_event:{case['_id'][5:]}:{unit}:{instance}:{counter:08d}",
            "type": "case_event", "kind": "accepted", "case_id": case["_id"],
            "village": case["village"], "township": case["township"],
            "origin": {"unit": unit, "instance": instance}, "counter": counter}  # fmt: skip


def _directory() -> list[dict[str, Any]]:
    return [
        _unit(DISTRICT, "district", None, None),
        _unit(T, "township", T, None),
        _unit(A, "village", T, A),
        _unit(B, "village", T, B),
        _unit(U, "township", U, None),
        _unit(C, "village", U, C),
        _account("agent_a", "village_agent", A, T, A),
        _account("agent_b", "village_agent", B, T, B),
        _account("staff_t", "township_staff", T, T, None),
        _account("agent_c", "village_agent", C, U, C),
        _account("admin", "district_admin", DISTRICT, None, None),
        _registration(REG_A1, A),
        _registration(REG_A2, A),
        _registration(REG_B1, B),
        _registration(REG_REVOKED, A, revoked=True),
    ]


class Network:
    """The two servers, set up, with the township node's district URL."""

    def __init__(self, district: PouchServer, township: PouchServer) -> None:
        self.district = district
        self.township = township
        self.d = connect(district.url)
        self.t = connect(township.url)
        self.district_url = ""

    def kiosk(self, credentials: KioskCredentials) -> str:
        """The township server's URL with a kiosk's credentials."""
        return (
            f"http://{credentials.username}:{credentials.password}@127.0.0.1:{self.township.port}/"
        )


@pytest.fixture(scope="module")
def net() -> Iterator[Network]:
    """A district and a township server, set up once for the module, with demo directory."""
    with PouchServer() as district, PouchServer() as township:
        network = Network(district, township)
        setup_district(district.url)
        for doc in _directory():
            save_document(network.d["directory"], doc)
        settings = {"_id": "settings:district", "type": "settings", "sla": {"yellow": 0.8}}
        save_document(network.d["settings"], settings)
        for n in (1, 2):
            item = {"_id": f"catalogue_item:00000{n}:v1", "type": "catalogue_item", "version": 1}
            save_document(network.d["catalogue"], item)
        password = add_node(district.url, T)
        assert password
        network.district_url = f"http://{node_username(T)}:{password}@127.0.0.1:{district.port}/"
        report = setup_township(township.url, T, network.district_url)
        assert report.villages == [A, B]
        yield network


@pytest.fixture(autouse=True)
def _servers_alive(net: Network) -> Iterator[None]:
    yield
    net.district.check_alive()
    net.township.check_alive()


def _has(server: couchdb.Server, db: str, doc_id: str) -> bool:
    with couch_errors():
        return server[db].get(doc_id) is not None


def test_setup_twice_changes_nothing_and_later_villages_are_added(net: Network) -> None:
    assert setup_district(net.district.url).changes == []
    assert add_node(net.district.url, T) is None  # exists: no new password
    revs = {row.id: row.value["rev"] for row in net.t["_replicator"].view("_all_docs")}
    again = setup_township(net.township.url, T, net.district_url)
    assert again.changes == [] and again.unchanged > 0
    assert {row.id: row.value["rev"] for row in net.t["_replicator"].view("_all_docs")} == revs

    save_document(net.d["directory"], _unit(A2, "village", T, A2))
    third = setup_township(net.township.url, T, net.district_url)
    assert third.villages == [A, B, A2]
    assert f"database {village_database(A2)}" in third.changes
    added = {c.removeprefix("replication ") for c in third.changes if c.startswith("replication")}
    assert added == {f"sanji-{A2}-{what}" for what in
                     ("up", "down", "catalogue", "settings", "directory")}  # fmt: skip
    assert setup_township(net.township.url, T, net.district_url).changes == []
    security = net.t[village_database(A2)].security
    assert security["members"]["roles"] == [f"village:{A2}"]


def test_the_commands_run_the_same_set_up(net: Network, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["district", "setup", "--couchdb-url", net.district.url]) == 0
    assert "0 changed" in capsys.readouterr().out
    assert main(["district", "add-node", "--township", U, "--couchdb-url", net.district.url]) == 0
    out = capsys.readouterr().out
    assert f"--district-url http://{node_username(U)}:" in out
    assert main(["district", "add-node", "--township", U, "--couchdb-url", net.district.url]) == 0
    assert "exists, unchanged" in capsys.readouterr().out
    assert main(["district", "add-node", "--township", A, "--couchdb-url", net.district.url]) == 2
    assert "township code" in capsys.readouterr().err
    command = ["township", "setup", "--code", T, "--district-url", net.district_url]
    assert main([*command, "--couchdb-url", net.township.url]) == 0
    out = capsys.readouterr().out
    assert "0 changed" in out and A in out
    assert net.township.password not in out and net.district_url not in out


def test_a_village_case_reaches_the_district_and_an_event_comes_back(net: Network) -> None:
    case = _case(A, "k7f3a9", 1)
    save_document(net.t[village_database(A)], case)
    poll(lambda: _has(net.d, "district", case["_id"]), "the case at the district")
    assert _has(net.t, "township", case["_id"])

    # The district's service centre answers with an event on that case.
    event = _event(case, DISTRICT, "d1", 1)
    save_document(net.d["district"], event)
    poll(lambda: _has(net.t, village_database(A), event["_id"]), "the event in the village")
    assert _has(net.t, "township", event["_id"])
    assert not _has(net.t, village_database(B), event["_id"])
    assert not _has(net.t, village_database(B), case["_id"])


def test_other_townships_cases_stay_at_the_district(net: Network) -> None:
    other = _case(C, "k0c0c0", 1)
    save_document(net.d["district"], other)
    marker = _event(_case(A, "k7f3a9", 1), DISTRICT, "d1", 2)
    save_document(net.d["district"], marker)
    poll(lambda: _has(net.t, "township", marker["_id"]), "the marker event at the township")
    assert not _has(net.t, "township", other["_id"])


def test_catalogue_settings_and_own_agents_reach_the_village(net: Network) -> None:
    village = village_database(A)
    poll(lambda: _has(net.t, village, "settings:district"), "settings in the village")
    poll(lambda: _has(net.t, village, "catalogue_item:000002:v1"), "catalogue in the village")
    poll(lambda: _has(net.t, village, "account:agent_a"), "the village's agent")
    with couch_errors():
        ids = {row.id for row in net.t[village].view("_all_docs")}
    assert {"account:agent_b", "account:staff_t", "account:admin", "account:agent_c"}.isdisjoint(
        ids
    )
    assert not any(i.startswith("kiosk_registration:") for i in ids)
    assert {f"unit:{A}", f"unit:{T}"} <= ids and f"unit:{B}" not in ids
    assert ids & {"_design/sanji"}  # its own design document, not the district's copy
    with couch_errors():
        ddoc = net.t[village]["_design/sanji"]
    assert ddoc["sanji_kind"] == "village"
    # The township's directory holds its own units only.
    with couch_errors():
        directory = {row.id for row in net.t["directory"].view("_all_docs")}
    assert "account:staff_t" in directory and "account:agent_c" not in directory
    assert f"unit:{C}" not in directory


def test_kiosk_is_confined_to_its_village_database(net: Network) -> None:
    creds = enrol_kiosk(net.township.url, A, REG_A1, "k7f3a9")
    assert creds.database == village_database(A)
    kiosk_url = net.kiosk(creds)
    own = RemoteDatabase(kiosk_url, village_database(A))
    kiosk = connect(kiosk_url)

    # Its own village database: read (doc, _all_docs, _changes) and write its documents.
    poll(lambda: _has(net.t, village_database(A), "account:agent_a"), "the agent document")
    assert own.get("account:agent_a")["role"] == "village_agent"
    with couch_errors():
        assert len(list(kiosk[village_database(A)].view("_all_docs"))) > 0
    assert own.changes()["results"]
    case = _case(A, "k7f3a9", 2)
    own.put(dict(case))
    own.put({"_id": f"kiosk_status:{A}", "type": "kiosk_status", "village": A, "township": T})

    # Another village's database: nothing through the endpoints both servers guard.
    save_document(net.t[village_database(B)], _case(B, "kb0b0b", 1))
    other = RemoteDatabase(kiosk_url, village_database(B))
    for attempt in (
        lambda: other.get(f"case:{B}:kb0b0b:00000001"),
        lambda: other.changes(),
        lambda: other.info(),
        lambda: list(kiosk[village_database(B)].view("_all_docs")),
    ):
        with pytest.raises(CouchRejected), couch_errors():
            attempt()
    for db in ("township", "catalogue", "directory"):
        with pytest.raises(CouchRejected):
            RemoteDatabase(kiosk_url, db).changes()

    # Writes the village database's validate_doc_update (or security) refuses.
    refused = [
        _case(B, "k7f3a9", 3),  # another village's case
        {**_case(A, "k7f3a9", 4), "township": U},  # wrong township
        {"_id": "catalogue_item:000009:v1", "type": "catalogue_item"},
        {"_id": "settings:district", "type": "settings"},
        {"_id": "account:intruder", "type": "account", "village": A, "township": T},
        {"_id": f"kiosk_status:{B}", "type": "kiosk_status", "village": A, "township": T},
        {"_id": f"case:{A}:k7f3a9:00000005", "village": A, "township": T},  # no type
        {"_id": "_design/evil", "validate_doc_update": "function () {}"},
    ]
    for doc in refused:
        with pytest.raises(CouchRejected):
            own.put(dict(doc))
    # Case documents are immutable once written, and kiosks do not delete.
    current = own.get(case["_id"])
    with pytest.raises(CouchRejected):
        own.put({**current, "counter": 99})
    with pytest.raises(CouchRejected):
        own.put({"_id": case["_id"], "_rev": current["_rev"], "_deleted": True})
    assert own.get(case["_id"])["_rev"] == current["_rev"]

    # Its case and status travel up, and so does the enrolment record.
    poll(lambda: _has(net.d, "district", case["_id"]), "the kiosk's case at the district")
    poll(lambda: _has(net.d, "district", f"kiosk_status:{A}"), "the kiosk status upstream")
    poll(lambda: _has(net.d, "district", f"enrolment:{REG_A1}"), "the enrolment upstream")
    enrolment = net.d["district"][f"enrolment:{REG_A1}"]
    assert (enrolment["village"], enrolment["instance"]) == (A, "k7f3a9")


def test_enrolment_needs_a_live_registration_of_that_village(net: Network) -> None:
    with pytest.raises(EnrolmentRefused):
        enrol_kiosk(net.township.url, A, REG_REVOKED, "k1k1k1")
    with pytest.raises(EnrolmentRefused):
        enrol_kiosk(net.township.url, A, REG_B1, "k1k1k1")
    with pytest.raises(EnrolmentRefused):
        enrol_kiosk(net.township.url, A, f"{A}-00000000", "k1k1k1")
    with pytest.raises(ValueError):
        enrol_kiosk(net.township.url, A, REG_A2, "BAD ID")
    # A spent registration: another PC is refused, the same PC gets a new password.
    with pytest.raises(EnrolmentRefused, match="another PC"):
        enrol_kiosk(net.township.url, A, REG_A1, "k9k9k9")
    again = enrol_kiosk(net.township.url, A, REG_A1, "k7f3a9")
    RemoteDatabase(net.kiosk(again), village_database(A)).info()


def test_a_revoked_kiosk_loses_its_user(net: Network) -> None:
    keep = enrol_kiosk(net.township.url, B, REG_B1, "k2k2k2")
    revoked = enrol_kiosk(net.township.url, A, REG_A2, "k3k3k3")
    RemoteDatabase(net.kiosk(revoked), village_database(A)).info()

    save_document(net.d["directory"], _registration(REG_A2, A, revoked=True))

    def revoked_at_township() -> bool:
        with couch_errors():
            doc = net.t["directory"].get(f"kiosk_registration:{REG_A2}")
        return bool(doc and doc["revoked"])

    poll(revoked_at_township, "the revocation in the township's directory")
    deleted = apply_revocations(net.township.url)
    assert deleted == [f"kiosk-{REG_A2}-k3k3k3"]
    with pytest.raises(CouchRejected):
        RemoteDatabase(net.kiosk(revoked), village_database(A)).info()
    RemoteDatabase(net.kiosk(keep), village_database(B)).info()
    assert apply_revocations(net.township.url) == []
    assert main(["township", "apply-revocations", "--couchdb-url", net.township.url]) == 0


def test_sync_status_reports_every_replication(
    net: Network, capsys: pytest.CaptureFixture[str]
) -> None:
    def settled() -> list[Any]:
        rows = replication_status(net.township.url)
        if all(not r.failing and r.lag == 0 for r in rows):
            return rows
        return []

    rows = poll(settled, "every replication to catch up")
    assert len(rows) == 5 + 5 * 3  # the township's five, five per village (A, A2, B)
    assert all(r.state == "running" for r in rows)
    assert all(r.checkpoint is not None for r in rows if r.id.endswith(("-up", "-down")))

    assert main(["sync", "status", "--couchdb-url", net.township.url]) == 0
    out = capsys.readouterr().out
    assert "滞后 Lag" in out and f"sanji-{T}-up" in out and "healthy" in out
    assert net.township.password not in out
    assert main(["sync", "status", "--couchdb-url", net.district.url]) == 0
    assert "no replications" in capsys.readouterr().out

    # An edit of a case the district refuses (immutable) is not lag: the job checkpoints past
    # it. A full comparison finds the document the district lacks.
    case = _case(A, "k7f3a9", 1)
    current = net.t["township"][case["_id"]]
    net.t["township"].save({**current, "counter": 2})

    def up(full: bool) -> Any:
        rows = replication_status(net.township.url, full=full)
        return next(r for r in rows if r.id == f"sanji-{T}-up")

    poll(lambda: case["_id"] in up(full=True).missing, "the refused edit")
    assert up(full=False).lag == 0 and not up(full=True).failing
    assert main(["sync", "status", "--full", "--couchdb-url", net.township.url]) == 0
    out = capsys.readouterr().out
    assert "catching up" in out and f"target lacks: {case['_id']}" in out

    # A replication whose source cannot be reached is failing, and the command says so.
    net.t["_replicator"].save(
        {
            "_id": "broken",
            "source": "http://u:p@127.0.0.1:9/nowhere",
            "target": net.township.url + "township",
            "continuous": True,
        }  # fmt: skip
    )
    assert main(["sync", "status", "--couchdb-url", net.township.url]) == 1
    out = capsys.readouterr().out
    assert "failing" in out and "source nowhere" in out


def test_refuses_a_district_url_without_credentials_or_node_user(net: Network) -> None:
    from sync.topology import TopologyError

    with pytest.raises(TopologyError, match="credentials"):
        setup_township(net.township.url, T, f"http://127.0.0.1:{net.district.port}/")
    with pytest.raises(TopologyError, match="add-node"):
        setup_township(
            net.township.url, T, f"http://{node_username(U)}:nope@127.0.0.1:{net.district.port}/"
        )
    with pytest.raises(ValueError):
        setup_township(net.township.url, A, net.district_url)
    with pytest.raises(DocNotFound):
        RemoteDatabase(net.township.url, village_database(C)).info()
