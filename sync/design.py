"""The ``_design/sanji`` design documents: JavaScript filters and ``validate_doc_update`` rules.

Every database of the network holds one ``_design/sanji``. All of them carry the same named
filter functions (so asking any database for a filter of the deployment never names a missing
one, which would crash pouchdb-server); they differ in their ``validate_doc_update``:

============  ===================================  =============================================
kind          databases                            who may write what (server admins: anything)
============  ===================================  =============================================
``readonly``  the district's ``catalogue``,        nobody else: role ``township`` may read them
              ``settings``, ``directory``          (replication), only the district app writes
``district``  the district's ``district``          role ``township:<t>``: upward types whose
                                                   ``township`` (or ``origin.unit``) is ``<t>``;
                                                   role ``district`` (the district's own service
                                                   centre): upward types of any township
``village``   ``village_<v>`` on its township      role ``village:<v>`` (the kiosk): ``case``,
                                                   ``case_event`` and its own ``kiosk_status``
                                                   of village ``<v>`` and its township
``filters``   a township's copies of the three     no rule: their ``_security`` admits server
              and its ``township``                 admins only, who pass every rule anyway
============  ===================================  =============================================

For everyone but admins every rule also demands a ``type``, an id starting with
``<type>:``, no deletions, and no edits of an existing ``case`` or ``case_event`` (immutable).
Design documents are written by admins only (the servers refuse them to members anyway).
The ``village`` rule also refuses a kiosk's case document whose attachments are not JPEG,
PNG or PDF or exceed ``MAX_ATTACHMENT_BYTES`` each or ``MAX_CASE_ATTACHMENT_BYTES`` together
(its Python twin: ``sync.filters.attachment_problem``).

Why no rule where only admins write: pouchdb-server's validation plug-in (pouchdb-validation
4.2, ``validate()``) overwrites the ``_revisions`` of every incoming document with the stored
document's before writing it, so in a database with a ``validate_doc_update`` a replicated
*update* (``new_edits=false``) is silently dropped — answered as success, nothing stored. New
documents arrive (with their history cut to one revision). Case documents are written once, so
they flow everywhere; updates of mutable documents (settings, agents' accounts, kiosk status,
availability) do not reach a validated database on pouchdb-server. CouchDB is not affected.

The filters' Python twins are registered in ``sync.filters`` under the same names; a unit test
runs both over the same documents. Filter sources are ES5 (CouchDB's SpiderMonkey, Node's vm)
and stripped: a source starting with a newline breaks pouchdb-server.
"""

from __future__ import annotations

import json
from string import Template
from typing import Any, Literal

from core.hierarchy import Level, level_of, township_of

__all__ = [
    "DESIGN_ID",
    "DDOC",
    "CASE_TYPES",
    "KIOSK_TYPES",
    "UPWARD_TYPES",
    "FILTER_SOURCES",
    "DesignKind",
    "ATTACHMENT_TYPES",
    "MAX_ATTACHMENT_BYTES",
    "MAX_CASE_ATTACHMENT_BYTES",
    "filter_name",
    "validate_source",
    "design_document",
]

DDOC = "sanji"
"""The design document's name, as in ``filter=sanji/<name>``."""

DESIGN_ID = f"_design/{DDOC}"

CASE_TYPES = ("case", "case_event")
"""Immutable case documents."""

KIOSK_TYPES = ("case", "case_event", "kiosk_status")
"""What a kiosk writes, and what travels from a village database up to its township."""

UPWARD_TYPES = ("case", "case_event", "enrolment", "kiosk_status", "visit_availability")
"""What travels from a township up to the district (and is held by ``district``)."""

DesignKind = Literal["readonly", "district", "village", "filters"]

ATTACHMENT_TYPES = ("image/jpeg", "image/png", "application/pdf")
"""What a kiosk may attach to a case document (photographed or uploaded materials)."""

MAX_ATTACHMENT_BYTES = 1024 * 1024
"""One attachment of a kiosk's case document, after the kiosk's compression (1 MB): a
1600-pixel JPEG at quality 80 is 200-600 KB; a scanned PDF above it should be photographed."""

MAX_CASE_ATTACHMENT_BYTES = 8 * 1024 * 1024
"""Every attachment of one case document together (8 MB): the whole case travels in one
``_bulk_docs`` request of the kiosk's push, over a village's mobile link."""


def filter_name(name: str) -> str:
    """``"sanji/<name>"``: how replications and ``_changes`` name a filter."""
    if name not in FILTER_SOURCES:
        raise KeyError(f"no filter {name!r} in {DESIGN_ID}")
    return f"{DDOC}/{name}"


def _js(template: str, **values: Any) -> str:
    """A JavaScript source with ``$NAME`` placeholders filled in as JSON, stripped."""
    return Template(template).substitute({k: json.dumps(v) for k, v in values.items()}).strip()


# --- filters --------------------------------------------------------------------------------
# Each takes (doc, req) and reads its parameters from req.query. A filter missing its
# parameter passes nothing (never "every document without a township"). Parameters are read
# with String(): CouchDB hands them over as strings, pouchdb-server parses JSON-looking ones
# (a 12-digit code arrives as a number).

FILTER_SOURCES: dict[str, str] = {
    # catalogue, settings (district → township → village): every document but design docs,
    # tombstones included, so each tier's own _design/sanji stays its own.
    "data": _js(
        """
function (doc, req) {
  return doc._id.indexOf("_design/") !== 0;
}
"""
    ),
    # directory (district → township), district → township: documents addressed to ?township=.
    "by_township": _js(
        """
function (doc, req) {
  var township = req.query.township == null ? "" : String(req.query.township);
  return !!township && doc.township === township;
}
"""
    ),
    # township → district: upward types of ?township=, or written there for another township
    # (a transfer's new linked case names its destination but comes from this origin).
    "upward": _js(
        """
function (doc, req) {
  var township = req.query.township == null ? "" : String(req.query.township);
  if (!township || $UPWARD.indexOf(doc.type) === -1) {
    return false;
  }
  return doc.township === township || (!!doc.origin && doc.origin.unit === township);
}
""",
        UPWARD=list(UPWARD_TYPES),
    ),
    # village_<v> → township: what the kiosk writes, of ?village=.
    "from_village": _js(
        """
function (doc, req) {
  var village = req.query.village == null ? "" : String(req.query.village);
  return !!village && doc.village === village && $KIOSK.indexOf(doc.type) !== -1;
}
""",
        KIOSK=list(KIOSK_TYPES),
    ),
    # township → village_<v>: that village's case documents.
    "for_village": _js(
        """
function (doc, req) {
  var village = req.query.village == null ? "" : String(req.query.village);
  return !!village && doc.village === village && $CASES.indexOf(doc.type) !== -1;
}
""",
        CASES=list(CASE_TYPES),
    ),
    # directory → village_<v>: the village's agents (no other account's password hash ever
    # goes down) and the unit documents of the village and its township (names, no secrets).
    "village_agents": _js(
        """
function (doc, req) {
  var village = req.query.village == null ? "" : String(req.query.village);
  if (!village) {
    return false;
  }
  if (doc.type === "account") {
    return doc.village === village && doc.role === "village_agent";
  }
  if (doc.type === "unit") {
    return doc.code === village || doc.code === village.slice(0, 9) + "000";
  }
  return false;
}
"""
    ),
}

# --- validate_doc_update --------------------------------------------------------------------

# The checks every non-admin write goes through; $ALLOWED is the kind's writable types.
_COMMON = """
  if (newDoc._deleted) {
    throw({forbidden: "documents are not deleted here / 此处不能删除文档"});
  }
  var type = newDoc.type;
  if (typeof type !== "string" || type === "") {
    throw({forbidden: "every document needs a type / 文档缺少 type"});
  }
  if (newDoc._id.indexOf(type + ":") !== 0) {
    throw({forbidden: "the id must start with '" + type + ":' / 文档 id 须以类型开头"});
  }
  if ($ALLOWED.indexOf(type) === -1) {
    throw({forbidden: "type '" + type + "' is not written here / 此处不能写入该类型"});
  }
  if ($CASES.indexOf(type) !== -1 && oldDoc && !oldDoc._deleted) {
    throw({forbidden: "case documents are immutable / 办件文档写入后不可修改"});
  }
"""

_READONLY = """
function (newDoc, oldDoc, userCtx, secObj) {
  if ((userCtx.roles || []).indexOf("_admin") !== -1) {
    return;
  }
  throw({forbidden: "read-only copy: written by the district only / 只读数据库, 仅由区级写入"});
}
"""

_DISTRICT = """
function (newDoc, oldDoc, userCtx, secObj) {
  var roles = userCtx.roles || [];
  if (roles.indexOf("_admin") !== -1) {
    return;
  }
  if (roles.indexOf("district") === -1 && roles.indexOf("township") === -1) {
    throw({unauthorized: "only township nodes and the district centre write here / 无写入权限"});
  }
$COMMON
  if (roles.indexOf("district") !== -1) {
    return;
  }
  var addressee = newDoc.township;
  var origin = newDoc.origin && newDoc.origin.unit;
  if (!(typeof addressee === "string" && roles.indexOf("township:" + addressee) !== -1) &&
      !(typeof origin === "string" && roles.indexOf("township:" + origin) !== -1)) {
    throw({forbidden: "a township writes only its own documents / 只能写入本镇街的文档"});
  }
}
"""

_VILLAGE = """
function (newDoc, oldDoc, userCtx, secObj) {
  var village = $VILLAGE;
  var township = $TOWNSHIP;
  var roles = userCtx.roles || [];
  if (roles.indexOf("_admin") !== -1) {
    return;
  }
  if (roles.indexOf("village:" + village) === -1) {
    throw({unauthorized: "only this village's kiosk writes here / 只有本村终端可以写入"});
  }
$COMMON
  if (newDoc.village !== village || newDoc.township !== township) {
    throw({forbidden: "a document of another village / 不是本村的文档"});
  }
  if (type === "kiosk_status" && newDoc._id !== "kiosk_status:" + village &&
      newDoc._id.indexOf("kiosk_status:" + village + ":") !== 0) {
    throw({forbidden: "a kiosk writes only its own status / 只能写入本村终端的状态"});
  }
$ATTACHMENTS
}
"""


# A kiosk's case documents carry only JPEG, PNG or PDF attachments, each and all together
# within the limits. CouchDB hands the rule stubs with ``length``; pouchdb-server the inline
# base64 ``data``, whose decoded length is computed. An attachment of unknown size is refused.
_ATTACHMENTS = """
  if ($CASES.indexOf(type) !== -1 && newDoc._attachments) {
    var atts = newDoc._attachments;
    var total = 0;
    if (typeof atts !== "object") {
      throw({forbidden: "_attachments must be an object / 附件格式不正确"});
    }
    for (var name in atts) {
      if (!Object.prototype.hasOwnProperty.call(atts, name)) {
        continue;
      }
      var att = atts[name] || {};
      if ($ATTACHMENT_TYPES.indexOf(att.content_type) === -1) {
        throw({forbidden: "attachment '" + name + "': only JPEG, PNG or PDF / " +
                          "附件只能是 JPEG、PNG 图片或 PDF 文件"});
      }
      var length = att.length;
      if (typeof length !== "number" && typeof att.data === "string") {
        var data = att.data.replace(/\\s/g, "");
        var pad = data.slice(-2) === "==" ? 2 : (data.slice(-1) === "=" ? 1 : 0);
        length = Math.floor(data.length / 4) * 3 - pad;
      }
      if (typeof length !== "number" || !(length <= $MAX_BYTES)) {
        throw({forbidden: "attachment '" + name + "' is over " + $MAX_BYTES + " bytes / " +
                          "单个附件超过大小限制"});
      }
      total += length;
    }
    if (total > $MAX_TOTAL) {
      throw({forbidden: "attachments over " + $MAX_TOTAL + " bytes in all / 附件合计超过大小限制"});
    }
  }
"""


def _with_common(template: str, allowed: tuple[str, ...]) -> str:
    common = Template(_COMMON.strip("\n")).safe_substitute(
        ALLOWED=json.dumps(list(allowed)), CASES=json.dumps(list(CASE_TYPES))
    )
    return template.replace("$COMMON", common)


def validate_source(kind: DesignKind, code: str | None = None) -> str | None:
    """The ``validate_doc_update`` source of a database kind (``code``: its village), or None
    for ``filters`` databases."""
    if kind == "filters":
        return None
    if kind == "readonly":
        return _js(_READONLY)
    if kind == "district":
        return _js(_with_common(_DISTRICT, UPWARD_TYPES))
    if kind == "village":
        if code is None or level_of(code) is not Level.VILLAGE:
            raise ValueError(f"a village design document needs a village code, not {code!r}")
        attachments = Template(_ATTACHMENTS.strip("\n")).safe_substitute(
            CASES=json.dumps(list(CASE_TYPES)),
            ATTACHMENT_TYPES=json.dumps(list(ATTACHMENT_TYPES)),
            MAX_BYTES=json.dumps(MAX_ATTACHMENT_BYTES),
            MAX_TOTAL=json.dumps(MAX_CASE_ATTACHMENT_BYTES),
        )
        source = _with_common(_VILLAGE, KIOSK_TYPES).replace("$ATTACHMENTS", attachments)
        return _js(source, VILLAGE=code, TOWNSHIP=township_of(code))
    raise ValueError(f"unknown design document kind: {kind!r}")


def design_document(kind: DesignKind, code: str | None = None) -> dict[str, Any]:
    """The ``_design/sanji`` document (without ``_rev``) for a database of ``kind``."""
    ddoc: dict[str, Any] = {
        "_id": DESIGN_ID,
        "language": "javascript",
        "sanji_kind": kind,
        "filters": dict(FILTER_SOURCES),
    }
    validate = validate_source(kind, code)
    if validate is not None:
        ddoc["validate_doc_update"] = validate
    return ddoc
