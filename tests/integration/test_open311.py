"""The Open311 GeoReport v2 view of the published catalogue, against pouchdb-server.

One app per database kind serves the module, and the `catalogue` database is emptied when each
starts: the first test sees nothing published; later ones publish more versions as they go.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.orm import Session, sessionmaker

from central.app import create_app
from central.db import make_engine, make_sessionmaker, migrate
from central.services import catalogue
from central.services.publish import PublishResult, publish
from central.settings import Settings
from sync.couch import connect
from sync.devserver import free_port
from tests.conftest import CouchUnderTest
from tests.sql import throwaway_database

SERVICE_FIELDS = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
]
ATTRIBUTE_FIELDS = [
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
    "values",
]


@dataclass
class Env:
    """A client of the app under test, sessions on its database and its CouchDB URL."""

    client: TestClient
    sessions: sessionmaker[Session]
    couch_url: str
    database_url: str

    def add(self, code: str, **changes: Any) -> None:
        """Add an item to the working copy."""
        with self.sessions() as s:
            catalogue.create_item(s, item_body(code, **changes), "tester")

    def retire(self, code: str) -> None:
        """Retire an item of the working copy."""
        with self.sessions() as s:
            catalogue.set_retired(s, code, True, "tester")

    def publish(self) -> PublishResult:
        """Publish the working copy."""
        with self.sessions() as s:
            return publish(s, connect(self.couch_url), "tester")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    couch_server: CouchUnderTest,
) -> Iterator[Env]:
    """An app on a migrated database of each kind, with nothing published yet."""
    server = connect(couch_server.url)
    if "catalogue" in server:  # a fixed name: the other database kind's versions must go
        del server["catalogue"]
    with throwaway_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        migrate(url)
        engine = make_engine(url)
        app = create_app(Settings(database_url=url, couchdb_url=couch_server.url))
        with TestClient(app) as client:
            yield Env(client, make_sessionmaker(engine), couch_server.url, url)
        engine.dispose()
    couch_server.check_alive()


def item_body(code: str, **changes: Any) -> dict[str, Any]:
    """A valid catalogue item with two materials, one of which may follow later."""
    return {
        "code": code,
        "name": f"高龄津贴申领{code[-2:]}",
        "kind": "life",
        "handling_level": "village",
        "modes": ["on_the_spot", "door_to_door"],
        "department": "天生社区居委会",
        "case_type": "promised",
        "legal_limit_days": 15,
        "promised_limit_days": 10,
        "conditions": "年满80周岁 & 户籍在本区 <本人或代办人>",
        "materials": [
            {"key": "id_card", "name": "居民身份证", "form": "original", "standard": "在有效期内"},
            {
                "key": "hukou",
                "name": "户口簿",
                "form": "copy",
                "copies": 2,
                "may_follow": True,
                "follow_days": 5,
            },
        ],
        **changes,
    }


def services_json(env: Env) -> dict[str, dict[str, Any]]:
    """The JSON service list by code."""
    response = env.client.get("/open311/v2/services.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return {s["service_code"]: s for s in response.json()}


def services_xml(env: Env) -> dict[str, ET.Element]:
    """The XML service list by code."""
    response = env.client.get("/open311/v2/services.xml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(response.content)
    assert root.tag == "services"
    assert all(child.tag == "service" for child in root)
    return {s.findtext("service_code"): s for s in root}  # type: ignore[misc]


def test_nothing_published_yet_is_an_empty_list(env: Env) -> None:
    # First in the module on purpose: the fixture emptied the catalogue database.
    env.add("O311NOTYET01")  # in the working copy only
    assert services_json(env) == {}
    assert services_xml(env) == {}
    assert env.client.get("/open311/v2/services/O311NOTYET01.json").status_code == 404


def test_service_list_json_and_xml(env: Env) -> None:
    env.add("O311LIST0001")
    env.add(
        "O311LIST0002",
        name="党员组织关系转接",
        kind="party",
        case_type="immediate",
        legal_limit_days=None,
        promised_limit_days=0,
        materials=[],
        modes=["on_the_spot"],  # no materials and no home-visit request: no metadata
    )
    env.publish()
    services = services_json(env)
    first, second = services["O311LIST0001"], services["O311LIST0002"]
    assert list(first) == SERVICE_FIELDS
    assert first["service_name"] == "高龄津贴申领01"
    assert (first["metadata"], first["type"], first["group"]) == (True, "realtime", "生活")
    assert "承诺件" in first["keywords"] and "上门办" in first["keywords"]
    assert "10个工作日" in first["description"]
    assert "年满80周岁 & 户籍在本区 <本人或代办人>" in first["description"]
    assert (second["metadata"], second["group"]) == (False, "党务")
    assert "即办件" in second["description"]
    xml = services_xml(env)
    element = xml["O311LIST0001"]
    assert [child.tag for child in element] == SERVICE_FIELDS
    assert element.findtext("metadata") == "true"
    assert element.findtext("type") == "realtime"
    assert element.findtext("group") == "生活"
    assert element.findtext("description") == first["description"]  # escaped and read back
    assert xml["O311LIST0002"].findtext("metadata") == "false"
    assert (
        env.client.get(
            "/open311/v2/services.json", params={"jurisdiction_id": "500109"}
        ).status_code
        == 200
    )


def test_service_definition_json_and_xml(env: Env) -> None:
    env.add("O311DEFN0001", modes=["on_the_spot"])  # materials only (see test_open311_requests)
    env.publish()
    response = env.client.get("/open311/v2/services/O311DEFN0001.json")
    assert response.status_code == 200
    definition = response.json()
    assert definition["service_code"] == "O311DEFN0001"
    id_card, hukou = definition["attributes"]
    assert list(id_card) == ATTRIBUTE_FIELDS
    assert (id_card["variable"], id_card["code"], id_card["datatype"], id_card["required"]) == (
        True,
        "id_card",
        "singlevaluelist",
        True,
    )
    assert (id_card["order"], hukou["order"]) == (1, 2)
    assert "居民身份证" in id_card["description"] and "在有效期内" in id_card["description"]
    assert [v["key"] for v in id_card["values"]] == ["provided", "missing"]
    assert [v["key"] for v in hukou["values"]] == ["provided", "missing", "to-follow"]
    assert "5个工作日" in hukou["values"][2]["name"]
    xml = env.client.get("/open311/v2/services/O311DEFN0001.xml")
    assert xml.status_code == 200
    assert xml.headers["content-type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(xml.content)
    assert root.tag == "service_definition"
    assert root.findtext("service_code") == "O311DEFN0001"
    attributes = root.findall("attributes/attribute")
    assert [a.findtext("code") for a in attributes] == ["id_card", "hukou"]
    assert [child.tag for child in attributes[0]] == ATTRIBUTE_FIELDS
    assert attributes[0].findtext("required") == "true"
    values = attributes[1].findall("values/value")
    assert [(v.findtext("key"), v.findtext("name")) for v in values][:2] == [
        ("provided", "已带齐"),
        ("missing", "未带"),
    ]


def test_unknown_service_is_404_in_both_formats(env: Env) -> None:
    response = env.client.get("/open311/v2/services/NOSUCHCODE99.json")
    assert response.status_code == 404
    assert response.json()[0]["code"] == 404
    assert "NOSUCHCODE99" in response.json()[0]["description"]
    xml = env.client.get("/open311/v2/services/NOSUCHCODE99.xml")
    assert xml.status_code == 404
    root = ET.fromstring(xml.content)
    assert root.tag == "errors"
    assert root.findtext("error/code") == "404"
    assert "NOSUCHCODE99" in (root.findtext("error/description") or "")
    no_format = env.client.get("/open311/v2/services/O311DEFN0001.csv")
    assert no_format.status_code == 404
    assert no_format.json()[0]["code"] == 404


def test_only_published_changes_show(env: Env) -> None:
    env.add("O311RETIRE01")
    env.add("O311RETIRE02")
    version = env.publish().version
    assert {"O311RETIRE01", "O311RETIRE02"} <= set(services_json(env))
    env.retire("O311RETIRE02")
    assert "O311RETIRE02" in services_json(env)  # retired in the working copy, still published
    assert env.publish().version == version + 1
    services = services_json(env)
    assert "O311RETIRE01" in services and "O311RETIRE02" not in services
    assert "O311RETIRE02" not in services_xml(env)
    assert env.client.get("/open311/v2/services/O311RETIRE02.json").status_code == 404
    assert env.client.get("/open311/v2/services/O311RETIRE01.xml").status_code == 200


def test_couchdb_unreachable_is_503(env: Env) -> None:
    settings = Settings(
        database_url=env.database_url,
        couchdb_url=f"http://127.0.0.1:{free_port()}",
        couch_timeout=2,
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/open311/v2/services.json")
        assert response.status_code == 503
        assert response.json()[0]["code"] == 503
        xml = client.get("/open311/v2/services/O311DEFN0001.xml")
        assert xml.status_code == 503
        assert ET.fromstring(xml.content).findtext("error/code") == "503"
