"""Named changes-feed filters for the embedded store: Python stand-ins for design-doc filters.

A CouchDB filter is a JavaScript function ``filters.<name>`` in design document ``_design/<ddoc>``
passed to ``_changes`` as ``filter=<ddoc>/<name>`` with query parameters. The embedded store runs
no JavaScript, so each filter the deployment uses is registered here under the same
``"<ddoc>/<name>"`` and must decide exactly as its JavaScript twin does::

    @register("sanji/by_village")
    def by_village(doc, query_params):
        return doc.get("village") == query_params.get("village")

A filter receives each candidate revision as a document dict (``_id``, ``_rev``, ``_deleted`` for
tombstones, attachment stubs) and the query parameters; it returns whether the change passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sync.design import (
    ATTACHMENT_TYPES,
    CASE_TYPES,
    KIOSK_TYPES,
    MAX_ATTACHMENT_BYTES,
    MAX_CASE_ATTACHMENT_BYTES,
    UPWARD_TYPES,
)
from sync.errors import BadRequest, DocNotFound

__all__ = [
    "FILTERS",
    "FilterFunction",
    "get_filter",
    "register",
    "data",
    "by_township",
    "upward",
    "from_village",
    "for_village",
    "village_agents",
    "attachment_length",
    "attachment_problem",
]

FilterFunction = Callable[[dict[str, Any], Mapping[str, str]], bool]
"""``(doc, query_params) -> passes``."""

FILTERS: dict[str, FilterFunction] = {}
"""Every registered filter, keyed by ``"<ddoc>/<name>"``."""


def _check_name(name: str) -> None:
    ddoc, _, fname = name.partition("/")
    if not ddoc or not fname or ddoc.startswith("_"):
        raise BadRequest(
            f"filter parameter must be of the form `designname/filtername`, not {name!r}"
        )


def register(name: str) -> Callable[[FilterFunction], FilterFunction]:
    """Decorator: register a filter function under ``"<ddoc>/<name>"``."""
    _check_name(name)

    def decorate(function: FilterFunction) -> FilterFunction:
        existing = FILTERS.get(name)
        if existing is not None and existing is not function:
            raise ValueError(f"filter {name!r} is already registered as {existing!r}")
        FILTERS[name] = function
        return function

    return decorate


def get_filter(name: str) -> FilterFunction:
    """The filter registered as ``name``; BadRequest if malformed, DocNotFound if unknown."""
    _check_name(name)
    try:
        return FILTERS[name]
    except KeyError:
        raise DocNotFound(
            f"missing filter function {name!r}: no such filter is registered in sync.filters"
        ) from None


# --- the deployment's filters: Python twins of the JavaScript in sync.design -------------------
# Same names, same decisions (tests/unit/test_design.py runs each pair over the same documents).
# A parameter that is missing or empty passes nothing, as in JavaScript (``!!""`` is false).


def _is_design(doc: dict[str, Any]) -> bool:
    return str(doc.get("_id", "")).startswith("_design/")


def _param(query_params: Mapping[str, str], name: str) -> str:
    """A query parameter as the JavaScript reads it: ``String(value)``, missing is ``""``."""
    value = query_params.get(name)
    return "" if value is None else str(value)


@register("sanji/data")
def data(doc: dict[str, Any], query_params: Mapping[str, str]) -> bool:
    """Every document but design documents (catalogue and settings going down)."""
    return not _is_design(doc)


@register("sanji/by_township")
def by_township(doc: dict[str, Any], query_params: Mapping[str, str]) -> bool:
    """Documents whose ``township`` is ``?township=``."""
    township = _param(query_params, "township")
    return bool(township) and doc.get("township") == township


@register("sanji/upward")
def upward(doc: dict[str, Any], query_params: Mapping[str, str]) -> bool:
    """Upward types of ``?township=`` (by ``township`` or by ``origin.unit``)."""
    township = _param(query_params, "township")
    if not township or doc.get("type") not in UPWARD_TYPES:
        return False
    origin = doc.get("origin")
    return doc.get("township") == township or (
        isinstance(origin, dict) and origin.get("unit") == township
    )


@register("sanji/from_village")
def from_village(doc: dict[str, Any], query_params: Mapping[str, str]) -> bool:
    """What a kiosk writes (case, case_event, kiosk_status) of ``?village=``."""
    village = _param(query_params, "village")
    return bool(village) and doc.get("village") == village and doc.get("type") in KIOSK_TYPES


@register("sanji/for_village")
def for_village(doc: dict[str, Any], query_params: Mapping[str, str]) -> bool:
    """The case documents of ``?village=``."""
    village = _param(query_params, "village")
    return bool(village) and doc.get("village") == village and doc.get("type") in CASE_TYPES


@register("sanji/village_agents")
def village_agents(doc: dict[str, Any], query_params: Mapping[str, str]) -> bool:
    """The village agents' accounts of ``?village=`` and the village's and township's units."""
    village = _param(query_params, "village")
    if not village:
        return False
    if doc.get("type") == "account":
        return doc.get("village") == village and doc.get("role") == "village_agent"
    if doc.get("type") == "unit":
        return doc.get("code") in (village, village[:9] + "000")
    return False


# --- validate_doc_update twins ----------------------------------------------------------------
# The village rule's attachment check (sync.design ``_ATTACHMENTS``), for the kiosk to check
# what it writes before the township refuses it; tests/unit/test_design.py compares the two.


def attachment_length(att: Mapping[str, Any]) -> int | None:
    """An attachment's size: its stub's ``length``, or the decoded length of inline base64."""
    length = att.get("length")
    if isinstance(length, int | float) and not isinstance(length, bool):
        return int(length)
    data = att.get("data")
    if isinstance(data, str):
        text = "".join(data.split())
        pad = 2 if text.endswith("==") else 1 if text.endswith("=") else 0
        return len(text) // 4 * 3 - pad
    return None


def attachment_problem(doc: Mapping[str, Any]) -> str | None:
    """Why the village rule refuses ``doc``'s attachments (its bilingual message), or None."""
    atts = doc.get("_attachments")
    if doc.get("type") not in CASE_TYPES or not atts:
        return None
    if not isinstance(atts, Mapping):
        return "_attachments must be an object / 附件格式不正确"
    total = 0
    for name, att in atts.items():
        att = att if isinstance(att, Mapping) else {}
        if att.get("content_type") not in ATTACHMENT_TYPES:
            return (
                f"attachment '{name}': only JPEG, PNG or PDF / 附件只能是 JPEG、PNG 图片或 PDF 文件"
            )
        length = attachment_length(att)
        if length is None or length > MAX_ATTACHMENT_BYTES:
            return (
                f"attachment '{name}' is over {MAX_ATTACHMENT_BYTES} bytes / 单个附件超过大小限制"
            )
        total += length
    if total > MAX_CASE_ATTACHMENT_BYTES:
        return f"attachments over {MAX_CASE_ATTACHMENT_BYTES} bytes in all / 附件合计超过大小限制"
    return None
