"""The design documents' JavaScript, run in Node, against their Python twins and the rules."""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from typing import Any

import pytest

from sync import filters
from sync.design import (
    DDOC,
    FILTER_SOURCES,
    MAX_ATTACHMENT_BYTES,
    design_document,
    filter_name,
    validate_source,
)

NODE = shutil.which("node")

# Runs each JavaScript function of the request in strict mode (as pouchdb-server compiles
# filters) and answers its results; a thrown {forbidden|unauthorized} object is the answer.
# Each filter runs twice: with the query as strings (CouchDB) and with JSON-looking values
# parsed (pouchdb-server hands ?township=500109102000 over as a number); both must agree.
_HARNESS = r"""
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const compile = (src) => new Function('"use strict"; return (' + src + ');')();
const out = {filters: {}, vdus: []};
for (const [name, src] of Object.entries(input.filters)) {
  const fn = compile(src);
  out.filters[name] = input.params.map((query) => {
    const parsed = {};
    for (const [k, v] of Object.entries(query)) {
      try { parsed[k] = JSON.parse(v); } catch (e) { parsed[k] = v; }
    }
    return input.docs.map((doc) => {
      const asString = fn(JSON.parse(JSON.stringify(doc)), {query: query});
      const asParsed = fn(JSON.parse(JSON.stringify(doc)), {query: parsed});
      return asString === asParsed ? asString : "differs with parsed parameters";
    });
  });
}
for (const c of input.vdus) {
  const fn = compile(c.source);
  try {
    fn(c.newDoc, c.oldDoc, c.userCtx, {});
    out.vdus.push("ok");
  } catch (e) {
    out.vdus.push(e && e.forbidden ? "forbidden" : e && e.unauthorized ? "unauthorized"
                  : "error: " + String(e));
  }
}
process.stdout.write(JSON.stringify(out));
"""

T = "500109102000"  # a township
U = "500109103000"  # another township
A = "500109102001"  # a village of T
B = "500109102002"  # another village of T
C = "500109103001"  # a village of U
DISTRICT = "500109000000"


def _run_node(request: dict[str, Any]) -> dict[str, Any]:
    if NODE is None:
        pytest.fail("node is required (Node 20 is part of the development set-up)")
    result = subprocess.run(
        [NODE, "-e", _HARNESS],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def _fixed_docs() -> list[dict[str, Any]]:
    def case(cid: str, village: str | None, township: str, unit: str, **extra: Any) -> dict:
        return {
            "_id": f"case:{cid}",
            "_rev": "1-a",
            "type": "case",
            "village": village,
            "township": township,
            "origin": {"unit": unit, "instance": "k7f3a9"},
            **extra,
        }

    return [
        case(f"{A}:k7f3a9:00000001", A, T, A),
        case(f"{C}:k1:00000001", C, U, C),
        case(f"{T}:t1:00000002", None, U, T),  # a transfer's new linked case, sent from T to U
        case(f"{T}:t1:00000003", None, T, T),
        {"_id": f"case_event:{A}:x", "_rev": "1-b", "type": "case_event", "village": A,
         "township": T, "kind": "received", "origin": {"unit": T, "instance": "t1"}},
        {"_id": f"case_event:{B}:y", "_rev": "1-b", "type": "case_event", "village": B,
         "township": T, "origin": None},
        {"_id": f"kiosk_status:{A}", "_rev": "3-c", "type": "kiosk_status", "village": A,
         "township": T},
        {"_id": "enrolment:r1", "_rev": "1-d", "type": "enrolment", "village": A, "township": T},
        {"_id": f"visit_availability:{T}", "_rev": "1-e", "type": "visit_availability",
         "township": T},
        {"_id": f"unit:{A}", "_rev": "1-f", "type": "unit", "code": A, "township": T,
         "village": A},
        {"_id": f"unit:{T}", "_rev": "1-f", "type": "unit", "code": T, "township": T,
         "village": None},
        {"_id": f"unit:{B}", "_rev": "1-f", "type": "unit", "code": B, "township": T,
         "village": B},
        {"_id": f"unit:{DISTRICT}", "_rev": "1-f", "type": "unit", "code": DISTRICT,
         "township": None, "village": None},
        {"_id": "account:agent_a", "_rev": "1-g", "type": "account", "role": "village_agent",
         "village": A, "township": T, "password_hash": "x"},
        {"_id": "account:agent_b", "_rev": "1-g", "type": "account", "role": "village_agent",
         "village": B, "township": T, "password_hash": "x"},
        {"_id": "account:staff_t", "_rev": "1-g", "type": "account", "role": "township_staff",
         "village": None, "township": T, "password_hash": "x"},
        {"_id": "account:admin", "_rev": "1-g", "type": "account", "role": "district_admin",
         "village": None, "township": None, "password_hash": "x"},
        {"_id": "kiosk_registration:r1", "_rev": "1-h", "type": "kiosk_registration",
         "village": A, "township": T, "revoked": False},
        {"_id": "catalogue_item:1:v1", "_rev": "1-i", "type": "catalogue_item"},
        {"_id": "settings:district", "_rev": "1-j", "type": "settings"},
        {"_id": "_design/sanji", "_rev": "1-k", "filters": {}},
        {"_id": f"case:{A}:k:00000009", "_rev": "2-l", "_deleted": True},  # a tombstone
        {"_id": "odd:1", "_rev": "1-m", "type": ["case"], "village": A, "township": T},
        {"_id": "odd:2", "_rev": "1-m", "type": "case", "village": A, "township": T,
         "origin": "T"},
        {"_id": "odd:3", "_rev": "1-m", "type": "case", "township": U, "origin": [T]},
        {"_id": "odd:4", "_rev": "1-m", "type": "account", "role": "village_agent",
         "village": None},
        {"_id": "odd:5", "_rev": "1-m"},
    ]  # fmt: skip


def _random_docs(count: int, seed: int) -> list[dict[str, Any]]:
    """Documents drawn from small pools of values, so that many of them pass some filter."""
    rng = random.Random(seed)
    codes = [T, U, A, B, C, DISTRICT, "", None]
    types = ["case", "case_event", "kiosk_status", "enrolment", "visit_availability",
             "account", "unit", "catalogue_item", "settings", None, 7]  # fmt: skip
    docs = []
    for n in range(count):
        doc: dict[str, Any] = {"_id": f"{rng.choice(['x', '_design/', 'case'])}:{n}", "_rev": "1-z"}
        for key, pool in (
            ("type", types),
            ("village", codes),
            ("township", codes),
            ("code", codes),
            ("role", ["village_agent", "township_staff", None]),
        ):
            if rng.random() < 0.8:
                doc[key] = rng.choice(pool)
        if rng.random() < 0.5:
            doc["origin"] = rng.choice([{"unit": rng.choice(codes)}, None, "x", [], {}])
        if rng.random() < 0.05:
            doc = {"_id": doc["_id"], "_rev": "2-y", "_deleted": True}
        docs.append(doc)
    return docs


PARAMS: list[dict[str, str]] = [
    {},
    {"township": T},
    {"township": U},
    {"township": ""},
    {"village": A},
    {"village": B},
    {"village": C},
    {"village": ""},
    {"township": T, "village": A},
]


def test_every_javascript_filter_has_its_python_twin() -> None:
    assert set(FILTER_SOURCES) == {
        name.split("/", 1)[1] for name in filters.FILTERS if name.startswith(f"{DDOC}/")
    }
    for source in FILTER_SOURCES.values():
        assert source == source.strip() and source.startswith("function")


def test_javascript_and_python_filters_agree() -> None:
    docs = _fixed_docs() + _random_docs(400, seed=3)
    answer = _run_node({"filters": FILTER_SOURCES, "docs": docs, "params": PARAMS, "vdus": []})
    passed = 0
    for name in FILTER_SOURCES:
        python = filters.get_filter(filter_name(name))
        for params, js_results in zip(PARAMS, answer["filters"][name], strict=True):
            for doc, js in zip(docs, js_results, strict=True):
                assert python(doc, params) is js, (name, params, doc, js)
                passed += js
    assert passed > 100  # the samples exercise the passing branches too


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("by_township", {"township": T}, {
            f"case:{A}:k7f3a9:00000001", f"case:{T}:t1:00000003", f"case_event:{A}:x",
            f"case_event:{B}:y", f"kiosk_status:{A}", "enrolment:r1", f"visit_availability:{T}",
            f"unit:{A}", f"unit:{T}", f"unit:{B}", "account:agent_a", "account:agent_b",
            "account:staff_t", "kiosk_registration:r1", "odd:1", "odd:2"}),
        ("upward", {"township": T}, {
            f"case:{A}:k7f3a9:00000001", f"case:{T}:t1:00000002", f"case:{T}:t1:00000003",
            f"case_event:{A}:x", f"case_event:{B}:y", f"kiosk_status:{A}", "enrolment:r1",
            f"visit_availability:{T}", "odd:2"}),
        ("from_village", {"village": A}, {
            f"case:{A}:k7f3a9:00000001", f"case_event:{A}:x", f"kiosk_status:{A}", "odd:2"}),
        ("for_village", {"village": A}, {
            f"case:{A}:k7f3a9:00000001", f"case_event:{A}:x", "odd:2"}),
        ("village_agents", {"village": A}, {"account:agent_a", f"unit:{A}", f"unit:{T}"}),
        ("by_township", {}, set()),
        ("village_agents", {"village": ""}, set()),
    ],
)  # fmt: skip
def test_filters_pass_what_the_topology_needs(
    name: str, params: dict[str, str], expected: set[str]
) -> None:
    python = filters.get_filter(filter_name(name))
    assert {doc["_id"] for doc in _fixed_docs() if python(doc, params)} == expected


def test_data_filter_keeps_design_documents_at_home() -> None:
    data = filters.get_filter("sanji/data")
    passed = {doc["_id"] for doc in _fixed_docs() if data(doc, {})}
    assert "_design/sanji" not in passed
    assert f"case:{A}:k:00000009" in passed  # tombstones of data travel


# --- validate_doc_update ------------------------------------------------------------------

ADMIN = {"name": "admin", "roles": ["_admin"]}
KIOSK_A = {"name": "kiosk-a", "roles": [f"village:{A}"]}
KIOSK_B = {"name": "kiosk-b", "roles": [f"village:{B}"]}
NODE_T = {"name": "township-t", "roles": ["township", f"township:{T}"]}
NODE_U = {"name": "township-u", "roles": ["township", f"township:{U}"]}
CENTRE = {"name": "district-centre", "roles": ["district"]}
NOBODY = {"name": None, "roles": []}


def _doc(type_: str, key: str, village: str | None, township: str, **extra: Any) -> dict:
    return {"_id": f"{type_}:{key}", "type": type_, "village": village, "township": township,
            **extra}  # fmt: skip


CASE_A = _doc("case", f"{A}:k1:00000001", A, T, origin={"unit": A, "instance": "k1"})
EVENT_A = _doc("case_event", f"{A}:k1:00000001:{T}:t1:00000001", A, T)
CASE_B = _doc("case", f"{B}:k2:00000001", B, T)
CASE_U = _doc("case", f"{C}:k3:00000001", C, U)
TRANSFER = _doc("case", f"{T}:t1:00000002", None, U, origin={"unit": T, "instance": "t1"})
STATUS_A = _doc("kiosk_status", A, A, T)
STATUS_A_PC = _doc("kiosk_status", f"{A}:k1", A, T)
STATUS_B = _doc("kiosk_status", B, B, T)
ENROLMENT = _doc("enrolment", "r1", A, T)
ITEM = {"_id": "catalogue_item:1:v1", "type": "catalogue_item"}
SETTINGS = {"_id": "settings:district", "type": "settings"}
ACCOUNT = {"_id": "account:x", "type": "account", "village": A, "township": T}
DESIGN = {"_id": "_design/evil", "validate_doc_update": "function () {}"}
NO_TYPE = {"_id": f"case:{A}:k1:00000002", "village": A, "township": T}
WRONG_ID = _doc("case", "x", A, T) | {"_id": f"case_event:{A}:x"}
WRONG_TOWNSHIP = _doc("case", f"{A}:k1:00000003", A, U)
TOMBSTONE = {"_id": CASE_A["_id"], "_deleted": True}

VDU_CASES: list[tuple[str, str | None, dict, dict | None, dict, str]] = [
    # kind, code, new doc, old doc, user, expected
    ("village", A, CASE_A, None, KIOSK_A, "ok"),
    ("village", A, EVENT_A, None, KIOSK_A, "ok"),
    ("village", A, STATUS_A, None, KIOSK_A, "ok"),
    ("village", A, STATUS_A_PC, STATUS_A_PC, KIOSK_A, "ok"),  # status is mutable
    ("village", A, CASE_A, None, ADMIN, "ok"),
    ("village", A, ITEM, None, ADMIN, "ok"),
    ("village", A, TOMBSTONE, CASE_A, ADMIN, "ok"),
    ("village", A, CASE_B, None, KIOSK_A, "forbidden"),
    ("village", A, STATUS_B, None, KIOSK_A, "forbidden"),
    ("village", A, _doc("kiosk_status", B, A, T), None, KIOSK_A, "forbidden"),
    ("village", A, WRONG_TOWNSHIP, None, KIOSK_A, "forbidden"),
    ("village", A, ITEM, None, KIOSK_A, "forbidden"),
    ("village", A, SETTINGS, None, KIOSK_A, "forbidden"),
    ("village", A, ACCOUNT, None, KIOSK_A, "forbidden"),
    ("village", A, ENROLMENT, None, KIOSK_A, "forbidden"),
    ("village", A, DESIGN, None, KIOSK_A, "forbidden"),
    ("village", A, NO_TYPE, None, KIOSK_A, "forbidden"),
    ("village", A, WRONG_ID, None, KIOSK_A, "forbidden"),
    ("village", A, CASE_A, CASE_A, KIOSK_A, "forbidden"),  # immutable
    ("village", A, CASE_A, TOMBSTONE, KIOSK_A, "ok"),
    ("village", A, TOMBSTONE, CASE_A, KIOSK_A, "forbidden"),
    ("village", A, CASE_A, None, KIOSK_B, "unauthorized"),
    ("village", A, CASE_A, None, NODE_T, "unauthorized"),
    ("village", A, CASE_A, None, NOBODY, "unauthorized"),
    ("district", None, CASE_A, None, NODE_T, "ok"),
    ("district", None, ENROLMENT, None, NODE_T, "ok"),
    ("district", None, _doc("visit_availability", T, None, T), None, NODE_T, "ok"),
    ("district", None, TRANSFER, None, NODE_T, "ok"),  # sent by T to U
    ("district", None, CASE_U, None, NODE_T, "forbidden"),
    ("district", None, CASE_A, None, NODE_U, "forbidden"),
    ("district", None, TRANSFER, None, NODE_U, "ok"),  # addressed to U
    ("district", None, ITEM, None, NODE_T, "forbidden"),
    ("district", None, ACCOUNT, None, NODE_T, "forbidden"),
    ("district", None, CASE_A, CASE_A, NODE_T, "forbidden"),
    ("district", None, TOMBSTONE, CASE_A, NODE_T, "forbidden"),
    ("district", None, CASE_U, None, CENTRE, "ok"),
    ("district", None, ITEM, None, CENTRE, "forbidden"),
    ("district", None, CASE_A, None, KIOSK_A, "unauthorized"),
    ("district", None, ITEM, None, ADMIN, "ok"),
    ("readonly", None, ITEM, None, ADMIN, "ok"),
    ("readonly", None, ITEM, None, NODE_T, "forbidden"),
    ("readonly", None, ACCOUNT, None, KIOSK_A, "forbidden"),
    ("readonly", None, SETTINGS, None, CENTRE, "forbidden"),
]


def test_validate_doc_update_rules() -> None:
    requests = [
        {
            "source": validate_source(kind, code),  # type: ignore[arg-type]
            "newDoc": new,
            "oldDoc": old,
            "userCtx": user,
        }
        for kind, code, new, old, user, _ in VDU_CASES
    ]
    answer = _run_node({"filters": {}, "docs": [], "params": [], "vdus": requests})
    wrong = [
        (kind, code, new["_id"], user["name"], expected, got)
        for (kind, code, new, _, user, expected), got in zip(VDU_CASES, answer["vdus"], strict=True)
        if got != expected
    ]
    assert not wrong, wrong


def test_design_documents_are_stripped_and_complete() -> None:
    for kind, code in (("readonly", None), ("district", None), ("village", A)):
        ddoc = design_document(kind, code)  # type: ignore[arg-type]
        assert ddoc["_id"] == "_design/sanji"
        assert set(ddoc["filters"]) == set(FILTER_SOURCES)
        assert ddoc["validate_doc_update"].startswith("function")
    # Databases only server admins write carry the filters and no rule.
    assert "validate_doc_update" not in design_document("filters")
    with pytest.raises(ValueError):
        design_document("village", T)
    with pytest.raises(ValueError):
        design_document("village", None)


# --- attachments of a kiosk's case documents ------------------------------------------------

_MB = MAX_ATTACHMENT_BYTES


def _inline(size: int, content_type: str = "image/jpeg") -> dict[str, Any]:
    return {"content_type": content_type, "data": base64.b64encode(b"\xff" * size).decode()}


def _stub(length: int, content_type: str = "image/jpeg") -> dict[str, Any]:
    return {"stub": True, "content_type": content_type, "length": length,
            "digest": "md5-x", "revpos": 1}  # fmt: skip


def _with(doc: dict[str, Any], **atts: Any) -> dict[str, Any]:
    return doc | {"_attachments": {f"material/id_card/{k}": v for k, v in atts.items()}}


ATTACHMENT_CASES: list[tuple[dict[str, Any], str]] = [
    (_with(CASE_A, a_jpg=_stub(300_000)), "ok"),
    (_with(CASE_A, a_png=_inline(1000, "image/png"), b_pdf=_stub(_MB, "application/pdf")), "ok"),
    (_with(EVENT_A, a_jpg=_inline(_MB)), "ok"),  # exactly the limit, inline
    (_with(CASE_A, a_jpg=_inline(_MB + 1)), "forbidden"),  # one byte over, inline
    (_with(CASE_A, a_jpg=_inline(_MB - 1)), "ok"),  # padding counted right
    (_with(CASE_A, a_jpg=_stub(_MB + 1)), "forbidden"),
    (_with(CASE_A, a_html=_stub(10, "text/html")), "forbidden"),
    (_with(CASE_A, a_svg=_inline(10, "image/svg+xml")), "forbidden"),
    (_with(CASE_A, a_none={"stub": True, "length": 10}), "forbidden"),  # no content type
    (_with(CASE_A, a_jpg={"stub": True, "content_type": "image/jpeg"}), "forbidden"),  # no size
    (_with(CASE_A, **{f"p{i}": _stub(_MB) for i in range(9)}), "forbidden"),  # 9 MB in all
    (_with(CASE_A, **{f"p{i}": _stub(_MB) for i in range(8)}), "ok"),  # 8 MB in all
    (_with(STATUS_A, a_html=_stub(10, "text/html")), "ok"),  # the rule is about case documents
]


def test_village_rule_checks_the_attachments_of_case_documents() -> None:
    source = validate_source("village", A)
    requests = [
        {"source": source, "newDoc": doc, "oldDoc": None, "userCtx": user}
        for doc, _ in ATTACHMENT_CASES
        for user in (KIOSK_A, ADMIN)
    ]
    answer = _run_node({"filters": {}, "docs": [], "params": [], "vdus": requests})["vdus"]
    kiosk, admin = answer[::2], answer[1::2]
    assert kiosk == [expected for _, expected in ATTACHMENT_CASES]
    assert set(admin) == {"ok"}  # the township's replicator (a server admin) is not checked
    # The Python twin decides as the JavaScript does.
    twin = ["ok" if filters.attachment_problem(doc) is None else "forbidden"
            for doc, _ in ATTACHMENT_CASES]  # fmt: skip
    assert twin == kiosk
    problem = filters.attachment_problem(ATTACHMENT_CASES[6][0])
    assert problem is not None and "附件只能是 JPEG、PNG 图片或 PDF 文件" in problem
