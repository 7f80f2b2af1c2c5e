"""seqae.phylo.compare: Robinson-Foulds distances."""

from __future__ import annotations

import pytest

from seqae.phylo.compare import normalized_rf, robinson_foulds
from seqae.phylo.ete import Tree


def test_nrf_on_hand_made_trees() -> None:
    a = Tree("((a,b),(c,d),(e,f));")
    assert normalized_rf(a, Tree("((a,b),(c,d),(e,f));")) == 0.0
    # Same unrooted tree, rooted elsewhere and written in another order.
    assert normalized_rf(a, Tree("(((f,e),(d,c)),(b,a));")) == 0.0
    # No non-trivial split shared: {ab, cd, ef} vs {ac, be, df}.
    result = robinson_foulds(a, Tree("((a,c),(b,e),(d,f));"))
    assert (result.rf, result.max_rf, result.nrf) == (6, 6, 1.0)
    # Splits {ab, de} vs {ab, ce}: one of two differs on each side -> 2 / 4.
    result = robinson_foulds(Tree("((a,b),c,(d,e));"), Tree("((a,b),d,(c,e));"))
    assert (result.rf, result.max_rf, result.nrf) == (2, 4, 0.5)


def test_nrf_rejects_different_leaf_sets() -> None:
    with pytest.raises(ValueError, match=r"only in the first: 'e'; only in the second: 'x'"):
        robinson_foulds(Tree("((a,b),c,(d,e));"), Tree("((a,b),c,(d,x));"))
    with pytest.raises(ValueError, match="duplicate leaf names"):
        robinson_foulds(Tree("((a,b),c,(d,a));"), Tree("((a,b),c,(d,e));"))
