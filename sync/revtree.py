"""Revision trees: pure CouchDB revision-tree logic, no I/O (REPLICATION_PROTOCOL.md §2).

A document's history is a forest: every revision ``N-hash`` is a node keyed by ``(N, hash)``
that points at its parent ``(N-1, parent_hash)`` or at nothing (a root: generation 1, or the
oldest revision kept after stemming, or the start of a history that did not overlap any known
one). Leaves are the nodes nobody points at; each node records whether its revision is a
deletion, which matters only for leaves. Trees are values: ``merge`` and ``stem`` return new
trees and never change their argument.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sync.errors import BadRequest

__all__ = [
    "DEFAULT_REVS_LIMIT",
    "RevNode",
    "RevTree",
    "Revisions",
    "build",
    "conflicts",
    "contains",
    "deleted_conflicts",
    "format_rev",
    "history",
    "is_deleted",
    "is_leaf",
    "leaves",
    "merge",
    "new_rev_hash",
    "parse_rev",
    "parse_revid",
    "parse_revisions",
    "stem",
    "winner",
]

DEFAULT_REVS_LIMIT = 1000
"""CouchDB's and PouchDB's default ``_revs_limit``."""

Revisions = dict[str, Any]
"""A ``_revisions`` value: ``{"start": N, "ids": [newest hash, ..., oldest hash]}``."""

_Key = tuple[int, str]
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_REV = re.compile(r"(\d+)-(.+)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class RevNode:
    """One revision in a tree: its parent's hash (``None`` for a root) and its deleted flag."""

    parent: str | None
    deleted: bool = False


class RevTree:
    """A document's revision forest: ``{(generation, hash): RevNode}``, treated as immutable."""

    __slots__ = ("_nodes", "_leaves")

    def __init__(self, nodes: Mapping[_Key, RevNode] | None = None) -> None:
        self._nodes: dict[_Key, RevNode] = dict(nodes or {})
        self._leaves: list[_Key] | None = None

    @property
    def nodes(self) -> Mapping[_Key, RevNode]:
        """Every node, keyed by ``(generation, hash)``."""
        return self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[str]:
        return (format_rev(pos, rev_hash) for pos, rev_hash in sorted(self._nodes))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RevTree) and self._nodes == other._nodes

    def __repr__(self) -> str:
        return f"RevTree({sorted(self)!r})"

    def leaf_keys(self) -> list[_Key]:
        """The leaves as ``(generation, hash)``, best first (the order ``winner`` uses)."""
        if self._leaves is None:
            parents = {
                (pos - 1, node.parent) for (pos, _), node in self._nodes.items() if node.parent
            }
            found = [key for key in self._nodes if key not in parents]
            found.sort(key=self._rank, reverse=True)
            self._leaves = found
        return self._leaves

    def _rank(self, key: _Key) -> tuple[bool, int, str]:
        return (not self._nodes[key].deleted, key[0], key[1])

    def to_json(self) -> str:
        """Serialise as compact JSON: ``[[generation, hash, parent hash | null, 0|1], ...]``."""
        rows = [
            [pos, rev_hash, node.parent, int(node.deleted)]
            for (pos, rev_hash), node in sorted(self._nodes.items())
        ]
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RevTree:
        """Read a tree written by ``to_json``."""
        return cls(
            {
                (pos, rev_hash): RevNode(parent, bool(deleted))
                for pos, rev_hash, parent, deleted in json.loads(text)
            }
        )


# --- revision strings -----------------------------------------------------------------------


def parse_revid(value: Any) -> str:
    """Validate one revision hash: a 32-char id must be hex (lowercased), others are verbatim."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"Invalid rev format: {value!r}")
    if len(value) == 32:
        if not _HEX32.fullmatch(value):
            raise BadRequest(f"Invalid rev format: {value!r} is 32 characters but not hex")
        return value.lower()
    return value


def parse_rev(rev: Any) -> tuple[int, str]:
    """``"3-abc"`` → ``(3, "abc")``; anything else (or generation < 1) raises BadRequest."""
    match = _REV.fullmatch(rev) if isinstance(rev, str) else None
    if match is None or int(match.group(1)) < 1:
        raise BadRequest(f"Invalid rev format: {rev!r}")
    return int(match.group(1)), parse_revid(match.group(2))


def format_rev(pos: int, rev_hash: str) -> str:
    """``(3, "abc")`` → ``"3-abc"``."""
    return f"{pos}-{rev_hash}"


def parse_revisions(value: Any) -> Revisions:
    """Validate a ``_revisions`` value and return it normalised; BadRequest if malformed."""
    if not isinstance(value, Mapping):
        raise BadRequest("_revisions must be an object with start and ids")
    start, ids = value.get("start"), value.get("ids")
    if (
        not isinstance(start, int)
        or isinstance(start, bool)
        or not isinstance(ids, list)
        or not ids
    ):
        raise BadRequest("_revisions needs an integer start and a non-empty list of ids")
    if start - len(ids) + 1 < 1:
        raise BadRequest(f"_revisions lists {len(ids)} ids, more than generation {start} allows")
    return {"start": start, "ids": [parse_revid(i) for i in ids]}


def _key(rev: str | _Key) -> _Key:
    return parse_rev(rev) if isinstance(rev, str) else rev


def new_rev_hash(
    body: Mapping[str, Any],
    *,
    deleted: bool = False,
    prev_rev: str | None = None,
    attachments: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """A new revision's hash: md5 hex of the canonical JSON of what the edit consists of.

    Inputs are the deleted flag, the revision edited (None for a new document), the body's own
    fields (every ``_``-prefixed member is left out: deletion and attachments come in as
    arguments) and each attachment's name, content type and digest. Identical edits made on
    different replicas therefore get the same revision and converge instead of conflicting.
    """
    own = {k: v for k, v in body.items() if not k.startswith("_")}
    atts = sorted(
        [name, att.get("content_type"), att.get("digest")]
        for name, att in (attachments or {}).items()
    )
    canonical = json.dumps(
        [bool(deleted), prev_rev, own, atts],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.md5(canonical.encode("utf-8")).hexdigest()


# --- queries --------------------------------------------------------------------------------


def contains(tree: RevTree, rev: str | _Key) -> bool:
    """Whether ``rev`` is anywhere in the tree (leaf or not, body kept or not)."""
    return _key(rev) in tree.nodes


def is_leaf(tree: RevTree, rev: str | _Key) -> bool:
    """Whether ``rev`` is a leaf (no known child)."""
    key = _key(rev)
    return key in tree.nodes and key in set(tree.leaf_keys())


def is_deleted(tree: RevTree, rev: str | _Key) -> bool:
    """Whether ``rev`` (which must be in the tree) is a deletion."""
    return tree.nodes[_key(rev)].deleted


def leaves(tree: RevTree) -> list[str]:
    """Every leaf revision, deleted ones too, best first: the winner, then the losers."""
    return [format_rev(*key) for key in tree.leaf_keys()]


def winner(tree: RevTree) -> str:
    """The deterministic winner: non-deleted first, then higher generation, then greater hash."""
    keys = tree.leaf_keys()
    if not keys:
        raise ValueError("an empty revision tree has no winner")
    return format_rev(*keys[0])


def conflicts(tree: RevTree) -> list[str]:
    """``_conflicts``: the non-deleted leaves other than the winner, best first."""
    keys = tree.leaf_keys()
    return [format_rev(*k) for k in keys[1:] if not tree.nodes[k].deleted]


def deleted_conflicts(tree: RevTree) -> list[str]:
    """``_deleted_conflicts``: the deleted leaves other than the winner, best first."""
    keys = tree.leaf_keys()
    return [format_rev(*k) for k in keys[1:] if tree.nodes[k].deleted]


def history(tree: RevTree, rev: str | _Key) -> Revisions:
    """The ``_revisions`` of ``rev``: its hash and its known ancestors', newest first."""
    pos, rev_hash = _key(rev)
    if (pos, rev_hash) not in tree.nodes:
        raise KeyError(format_rev(pos, rev_hash))
    ids = [rev_hash]
    parent = tree.nodes[(pos, rev_hash)].parent
    while parent is not None:
        ids.append(parent)
        parent = tree.nodes[(pos - len(ids) + 1, parent)].parent
    return {"start": pos, "ids": ids}


# --- changes ---------------------------------------------------------------------------------


def merge(tree: RevTree, revisions: Mapping[str, Any], *, deleted: bool = False) -> RevTree:
    """Graft a ``_revisions`` path onto the tree; ``deleted`` is the newest revision's flag.

    The path joins the tree where one of its revisions is already known, and it may lengthen a
    stemmed root's history. A path sharing no revision becomes a new root, a (spurious) conflict
    as in CouchDB. Merging a path the tree already holds changes nothing.
    """
    path = parse_revisions(revisions)
    start, ids = path["start"], path["ids"]
    nodes = dict(tree.nodes)
    for i, rev_hash in enumerate(ids):
        key = (start - i, rev_hash)
        parent = ids[i + 1] if i + 1 < len(ids) else None
        node = nodes.get(key)
        if node is None:
            nodes[key] = RevNode(parent, deleted if i == 0 else False)
        elif node.parent is None and parent is not None:
            nodes[key] = RevNode(parent, node.deleted)  # an older history for a stemmed root
        elif node.parent != parent:
            break  # the tree knows a longer or different history from here on: keep it
    if len(nodes) == len(tree.nodes) and nodes == tree.nodes:
        return tree
    return RevTree(nodes)


def stem(tree: RevTree, limit: int = DEFAULT_REVS_LIMIT) -> RevTree:
    """Keep, for every leaf, only its newest ``limit`` revisions (CouchDB 3's ``revs_limit``).

    A revision survives if it is within ``limit`` generations of some leaf; a survivor whose
    parent is dropped becomes a root. Leaves always survive.
    """
    if limit < 1:
        raise ValueError("revs_limit must be at least 1")
    budget: dict[_Key, int] = {}
    for leaf in tree.leaf_keys():
        key: _Key | None = leaf
        left = limit
        while key is not None and left > 0 and budget.get(key, 0) < left:
            budget[key] = left
            parent = tree.nodes[key].parent
            key = (key[0] - 1, parent) if parent is not None else None
            left -= 1
    if len(budget) == len(tree.nodes):
        return tree
    kept: dict[_Key, RevNode] = {}
    for key in budget:
        node = tree.nodes[key]
        if node.parent is not None and (key[0] - 1, node.parent) not in budget:
            node = RevNode(None, node.deleted)
        kept[key] = node
    return RevTree(kept)


def build(paths: Iterable[tuple[Mapping[str, Any], bool]]) -> RevTree:
    """A tree from ``(revisions, deleted)`` paths merged in order (handy in tests and tools)."""
    tree = RevTree()
    for revisions, deleted in paths:
        tree = merge(tree, revisions, deleted=deleted)
    return tree
