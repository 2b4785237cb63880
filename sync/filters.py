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

from sync.errors import BadRequest, DocNotFound

__all__ = ["FILTERS", "FilterFunction", "get_filter", "register"]

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
