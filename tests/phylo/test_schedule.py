"""seqae.phylo.schedule: unrooted trees from ete3 trees and back."""

from __future__ import annotations

import pytest

from seqae.phylo.ete import Tree
from seqae.phylo.schedule import unrooted_tree

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_unrooted_tree_round_trip_and_errors() -> None:
    tree = Tree("((a:0.1,b:0.2)x:0.1,(c:0.3,(d:0.05,e:0.15)y:0.2)z:0.15);", format=1)
    ut = unrooted_tree(tree, ["e", "d", "c", "b", "a"])
    back = ut.to_ete()
    assert sorted(back.get_leaf_names()) == ["a", "b", "c", "d", "e"]
    assert sorted(ut.internal_names) == ["x", "y", "z"]  # the bifurcating root is gone
    assert back.get_distance("a", "b") == pytest.approx(0.3)
    assert back.get_distance("a", "e") == pytest.approx(0.1 + 0.1 + 0.15 + 0.2 + 0.15)
    with pytest.raises(ValueError, match="only in the alignment .*'f'"):
        unrooted_tree(tree, ["a", "b", "c", "d", "e", "f"])
    with pytest.raises(ValueError, match="only in the tree .*'e'"):
        unrooted_tree(tree, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="duplicate sequence names: 'a'"):
        unrooted_tree(tree, ["a", "a", "b", "c", "d"])
    with pytest.raises(ValueError, match="at least 3 leaves"):
        unrooted_tree(Tree("(a:1,b:1);"), ["a", "b"])
