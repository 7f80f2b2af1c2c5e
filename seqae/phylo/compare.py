"""Tree comparison: normalised Robinson–Foulds distance between unrooted trees.

``rf`` counts the bipartitions (splits) of the leaf set that are in one tree
and not the other; ``max_rf`` is the most that can differ given the two trees'
resolved splits (``2 (n - 3)`` for two binary trees); ``nRF = rf / max_rf``
is 0 for the same unrooted topology and 1 when no non-trivial split is
shared. Roots and branch lengths are ignored. Computed by ete3's
``robinson_foulds(..., unrooted_trees=True)``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

__all__ = ["RFResult", "normalized_rf", "robinson_foulds"]


@dataclass(frozen=True)
class RFResult:
    """Robinson–Foulds comparison of two trees on the same leaves.

    Attributes:
        rf: number of splits found in only one of the trees.
        max_rf: the largest possible ``rf`` for these trees.
        nrf: ``rf / max_rf`` in [0, 1]; 0 when ``max_rf`` is 0 (n <= 3).
        n_leaves: size of the common leaf set.
    """

    rf: int
    max_rf: int
    nrf: float
    n_leaves: int


def _leaf_names(tree, which: str) -> set[str]:
    names = [leaf.name for leaf in tree.get_leaves()]
    counts = Counter(names)
    dups = sorted(name for name, k in counts.items() if k > 1)
    if dups:
        raise ValueError(f"{which} tree has duplicate leaf names: {', '.join(map(repr, dups[:5]))}")
    if "" in counts:
        raise ValueError(f"{which} tree has unnamed leaves")
    return set(names)


def _few(names: set[str], k: int = 5) -> str:
    shown = sorted(names)[:k]
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(map(repr, shown)) + more


def robinson_foulds(tree1, tree2) -> RFResult:
    """Unrooted Robinson–Foulds distance between two ete3 trees.

    Raises:
        ValueError: the leaf sets differ (the message lists a few leaves found
            only in each tree), or a tree has duplicate or unnamed leaves.
    """
    names1 = _leaf_names(tree1, "first")
    names2 = _leaf_names(tree2, "second")
    if names1 != names2:
        parts = []
        if names1 - names2:
            parts.append(f"only in the first: {_few(names1 - names2)}")
        if names2 - names1:
            parts.append(f"only in the second: {_few(names2 - names1)}")
        raise ValueError("the trees have different leaves; " + "; ".join(parts))
    if len(names1) <= 3:
        return RFResult(rf=0, max_rf=0, nrf=0.0, n_leaves=len(names1))
    rf, max_rf = tree1.robinson_foulds(tree2, unrooted_trees=True)[:2]
    return RFResult(rf=int(rf), max_rf=int(max_rf), nrf=float(rf) / max_rf if max_rf else 0.0, n_leaves=len(names1))


def normalized_rf(tree1, tree2) -> float:
    """``rf / max_rf`` in [0, 1] for two ete3 trees on the same leaves."""
    return robinson_foulds(tree1, tree2).nrf
