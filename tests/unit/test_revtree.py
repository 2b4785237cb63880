"""Revision trees: parsing, winners (the shared vectors), merging, stemming and rev hashes."""

from __future__ import annotations

import re

import pytest

from sync import revtree
from sync.errors import BadRequest
from sync.revtree import RevTree
from tests.unit.conftest import vectors

WINNERS = vectors("winning_revisions")


def path(start: int, *ids: str) -> dict[str, object]:
    """A ``_revisions`` value, newest id first."""
    return {"start": start, "ids": list(ids)}


def chain(n: int, prefix: str = "") -> dict[str, object]:
    """Generations 1..n with hashes ``<prefix>1``..``<prefix>n``."""
    return path(n, *[f"{prefix}{i}" for i in range(n, 0, -1)])


def tree_of_leaves(leaves: list[list[object]]) -> RevTree:
    """A forest where every ``[rev, deleted]`` is its own root, as the vectors list them."""
    tree = RevTree()
    for rev, deleted in leaves:
        pos, rev_hash = revtree.parse_rev(rev)
        tree = revtree.merge(tree, path(pos, rev_hash), deleted=bool(deleted))
    return tree


# --- parsing --------------------------------------------------------------------------------


def test_parse_rev_splits_generation_and_hash() -> None:
    assert revtree.parse_rev("3-abc") == (3, "abc")
    assert revtree.parse_rev("10-a-b") == (10, "a-b")
    assert revtree.format_rev(3, "abc") == "3-abc"


def test_parse_rev_lowercases_a_32_char_hex_hash() -> None:
    upper = "9A3C0E5B2F6D4A1B8C7E0D9F1A2B3C4D"
    assert revtree.parse_rev(f"4-{upper}") == (4, upper.lower())


@pytest.mark.parametrize(
    "garbage",
    ["abc", "3-", "-abc", "0-abc", "x-abc", "3", "", "3-" + "g" * 32, None, 3, ["1-a"]],
)
def test_parse_rev_rejects_garbage_as_bad_request(garbage: object) -> None:
    with pytest.raises(BadRequest):
        revtree.parse_rev(garbage)


@pytest.mark.parametrize(
    "bad",
    [
        {"start": 2, "ids": ["b", "a", "z"]},  # would reach generation 0
        {"start": 1, "ids": []},
        {"start": "1", "ids": ["a"]},
        {"ids": ["a"]},
        {"start": 1, "ids": ["z" * 32]},
        ["1-a"],
    ],
)
def test_parse_revisions_rejects_malformed_histories(bad: object) -> None:
    with pytest.raises(BadRequest):
        revtree.parse_revisions(bad)


# --- winners: the shared vectors --------------------------------------------------------------


@pytest.mark.parametrize("case", WINNERS["cases"], ids=lambda c: c["winner"])
def test_winner_vectors(case: dict[str, object]) -> None:
    tree = tree_of_leaves(case["leaves"])  # type: ignore[arg-type]
    assert revtree.winner(tree) == case["winner"]
    assert sorted(revtree.conflicts(tree)) == sorted(case["conflicts"])  # type: ignore[arg-type]
    assert sorted(revtree.deleted_conflicts(tree)) == sorted(case.get("deleted_conflicts", []))
    assert revtree.is_deleted(tree, case["winner"]) is case.get("deleted", False)
    # leaves() puts the winner first and lists every leaf once
    listed = revtree.leaves(tree)
    assert listed[0] == case["winner"]
    assert sorted(listed) == sorted(rev for rev, _ in case["leaves"])  # type: ignore[union-attr]


@pytest.mark.parametrize("order", [0, 1, 2])
def test_winner_does_not_depend_on_merge_order(order: int) -> None:
    leaves = [["1-a", False], ["1-b", False], ["1-1", False]]
    rotated = leaves[order:] + leaves[:order]
    assert revtree.winner(tree_of_leaves(rotated)) == "1-b"


def test_generation_compares_as_a_number() -> None:
    tree = revtree.build([(chain(10), False), (path(9, "z", "8"), False)])
    # 9-z has a greater hash than 10-10 as text, but generation 10 wins
    assert revtree.winner(tree) == "10-10"


def test_revisions_encoding_example() -> None:
    example = WINNERS["revisions_encoding"]["example"]
    tree = revtree.merge(RevTree(), example["_revisions"])
    assert revtree.history(tree, example["_rev"]) == example["_revisions"]
    assert list(tree) == example["history"]


# --- merging ----------------------------------------------------------------------------------


def test_merge_extends_a_branch() -> None:
    tree = revtree.merge(RevTree(), chain(2))
    tree = revtree.merge(tree, path(3, "3", "2"))
    assert revtree.leaves(tree) == ["3-3"]
    assert revtree.history(tree, "3-3") == chain(3)
    assert not revtree.is_leaf(tree, "2-2") and revtree.contains(tree, "2-2")


def test_merge_branches_into_a_conflict() -> None:
    tree = revtree.build([(chain(2), False), (path(2, "x", "1"), False)])
    assert sorted(revtree.leaves(tree)) == ["2-2", "2-x"]
    assert revtree.winner(tree) == "2-x"
    assert revtree.conflicts(tree) == ["2-2"]
    assert revtree.history(tree, "2-2") == path(2, "2", "1")


def test_non_overlapping_stemmed_histories_become_two_roots() -> None:
    # probed on pouchdb-server: 5-e[e,d,c,b,a] plus 7-g[g,f] gives two leaves
    tree = revtree.build([(path(5, "e", "d", "c", "b", "a"), False), (path(7, "g", "f"), False)])
    assert sorted(revtree.leaves(tree)) == ["5-e", "7-g"]
    assert revtree.winner(tree) == "7-g"
    assert revtree.history(tree, "7-g") == path(7, "g", "f")
    roots = [key for key, node in tree.nodes.items() if node.parent is None]
    assert sorted(roots) == [(1, "a"), (6, "f")]


def test_re_merging_an_existing_path_is_a_no_op() -> None:
    tree = revtree.build([(chain(3), False), (path(3, "x", "2", "1"), True)])
    assert revtree.merge(tree, chain(3)) is tree
    assert revtree.merge(tree, path(2, "2", "1")) is tree
    assert revtree.merge(tree, path(1, "1")) is tree
    # a different deleted flag for a known revision changes nothing either
    assert revtree.merge(tree, chain(3), deleted=True) is tree


def test_merge_does_not_change_its_argument() -> None:
    tree = revtree.merge(RevTree(), chain(2))
    before = tree.to_json()
    revtree.merge(tree, path(3, "3", "2"))
    assert tree.to_json() == before


def test_merge_lengthens_a_stemmed_root() -> None:
    tree = revtree.stem(revtree.merge(RevTree(), chain(6)), limit=2)
    assert revtree.history(tree, "6-6") == path(6, "6", "5")
    tree = revtree.merge(tree, path(6, "6", "5", "4", "3"))
    assert revtree.history(tree, "6-6") == path(6, "6", "5", "4", "3")
    assert revtree.leaves(tree) == ["6-6"]


def test_a_deleted_path_marks_only_its_leaf_deleted() -> None:
    tree = revtree.merge(RevTree(), chain(3), deleted=True)
    assert revtree.is_deleted(tree, "3-3")
    assert not revtree.is_deleted(tree, "2-2")


def test_all_deleted_leaves_still_have_a_winner() -> None:
    tree = revtree.build([(path(2, "0f1e", "1"), True), (path(2, "0f1d", "1"), True)])
    assert revtree.winner(tree) == "2-0f1e"
    assert revtree.conflicts(tree) == []
    assert revtree.deleted_conflicts(tree) == ["2-0f1d"]


def test_history_of_an_unknown_revision_raises() -> None:
    with pytest.raises(KeyError):
        revtree.history(revtree.merge(RevTree(), chain(1)), "2-nope")


def test_winner_of_an_empty_tree_raises() -> None:
    with pytest.raises(ValueError):
        revtree.winner(RevTree())


# --- stemming ---------------------------------------------------------------------------------


def test_stem_keeps_the_newest_revisions_of_a_linear_history() -> None:
    tree = revtree.stem(revtree.merge(RevTree(), chain(10)), limit=5)
    assert len(tree) == 5
    assert revtree.history(tree, "10-10") == path(10, "10", "9", "8", "7", "6")
    assert not revtree.contains(tree, "5-5")


def test_stem_keeps_every_leaf_and_splits_branches_apart() -> None:
    # 1..8 on the main line, and a short branch 4-x off 3-3
    tree = revtree.build([(chain(8), False), (path(4, "x", "3", "2", "1"), True)])
    stemmed = revtree.stem(tree, limit=3)
    assert sorted(revtree.leaves(stemmed)) == ["4-x", "8-8"]
    assert revtree.history(stemmed, "8-8") == path(8, "8", "7", "6")
    assert revtree.history(stemmed, "4-x") == path(4, "x", "3", "2")
    assert revtree.is_deleted(stemmed, "4-x")
    assert revtree.winner(stemmed) == "8-8"


def test_stem_keeps_a_shared_ancestor_linked_to_both_children() -> None:
    tree = revtree.build([(chain(4), False), (path(4, "y", "3", "2", "1"), False)])
    stemmed = revtree.stem(tree, limit=2)
    assert sorted(stemmed) == ["3-3", "4-4", "4-y"]
    assert revtree.history(stemmed, "4-y") == path(4, "y", "3")


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 1000])
def test_stem_never_drops_a_leaf_and_is_idempotent(limit: int) -> None:
    tree = revtree.build(
        [
            (chain(9), False),
            (path(5, "b", "4", "3"), False),
            (path(7, "c", "6", "5", "4"), True),
            (path(12, "z", "y"), False),
        ]
    )
    stemmed = revtree.stem(tree, limit)
    assert sorted(revtree.leaves(stemmed)) == sorted(revtree.leaves(tree))
    assert revtree.winner(stemmed) == revtree.winner(tree)
    # kept: exactly the newest `limit` revisions of each leaf's history (CouchDB 3's rule,
    # which keeps links between survivors, so a branch may still reach further back)
    expected = set()
    for leaf in revtree.leaves(tree):
        full = revtree.history(tree, leaf)
        expected |= {f"{full['start'] - i}-{h}" for i, h in enumerate(full["ids"][:limit])}
    assert set(stemmed) == expected
    for leaf in revtree.leaves(stemmed):
        assert (
            revtree.history(stemmed, leaf)["ids"][:limit]
            == (revtree.history(tree, leaf)["ids"][:limit])
        )
    assert revtree.stem(stemmed, limit) == stemmed


def test_stem_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError):
        revtree.stem(RevTree(), 0)


# --- hashes and serialisation ------------------------------------------------------------------


def test_new_rev_hash_is_deterministic_lowercase_md5_hex() -> None:
    one = revtree.new_rev_hash({"a": 1, "b": [1, 2]}, prev_rev="1-x")
    two = revtree.new_rev_hash({"b": [1, 2], "a": 1}, prev_rev="1-x")
    assert one == two
    assert re.fullmatch(r"[0-9a-f]{32}", one)


def test_new_rev_hash_ignores_special_members() -> None:
    plain = revtree.new_rev_hash({"a": 1}, prev_rev="1-x")
    decorated = {"a": 1, "_rev": "1-x", "_revisions": {"start": 1, "ids": ["x"]}, "_id": "d"}
    assert revtree.new_rev_hash(decorated, prev_rev="1-x") == plain


def test_new_rev_hash_depends_on_every_input() -> None:
    base = revtree.new_rev_hash({"a": 1}, prev_rev="1-x")
    att = {"f.txt": {"content_type": "text/plain", "digest": "md5-AAAA"}}
    other_att = {"f.txt": {"content_type": "text/plain", "digest": "md5-BBBB"}}
    variants = {
        revtree.new_rev_hash({"a": 2}, prev_rev="1-x"),
        revtree.new_rev_hash({"a": 1}, prev_rev="1-y"),
        revtree.new_rev_hash({"a": 1}, prev_rev=None),
        revtree.new_rev_hash({"a": 1}, prev_rev="1-x", deleted=True),
        revtree.new_rev_hash({"a": 1}, prev_rev="1-x", attachments=att),
        revtree.new_rev_hash({"a": 1}, prev_rev="1-x", attachments=other_att),
    }
    assert base not in variants and len(variants) == 6


def test_tree_json_round_trip() -> None:
    tree = revtree.build(
        [(chain(3), False), (path(3, "x", "2", "1"), True), (path(9, "q", "p"), False)]
    )
    again = RevTree.from_json(tree.to_json())
    assert again == tree
    assert revtree.leaves(again) == revtree.leaves(tree)
    assert revtree.is_deleted(again, "3-x")
