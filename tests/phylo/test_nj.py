"""seqae.phylo.nj: neighbor joining against additive trees, Biopython and scikit-bio."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.phylo.compare import normalized_rf, robinson_foulds
from seqae.phylo.distance import p_distance
from seqae.phylo.ete import Tree
from seqae.phylo.nj import linkage_to_tree, neighbor_joining, nj_linkage
from tests.phylo.conftest import random_additive, random_matrix, unrooted_edges


def bio_to_ete(tree) -> Tree:
    """A Biopython tree as an ete3 Tree, branch lengths copied exactly (no text)."""
    root = Tree(dist=0.0)
    stack = [(tree.root, root)]
    while stack:
        clade, node = stack.pop()
        for child in clade.clades:
            kid = node.add_child(name=child.name if child.is_terminal() else "", dist=child.branch_length or 0.0)
            stack.append((child, kid))
    return root


def bio_nj(dist: np.ndarray, names: list[str]) -> Tree:
    from Bio.Phylo.TreeConstruction import DistanceMatrix, DistanceTreeConstructor

    lower = [dist[i, : i + 1].tolist() for i in range(len(names))]
    return bio_to_ete(DistanceTreeConstructor().nj(DistanceMatrix(list(names), lower)))


def skbio_nj(dist: np.ndarray, names: list[str]) -> Tree:
    import skbio
    from skbio.tree import nj

    return Tree(str(nj(skbio.DistanceMatrix(dist, names))).strip(), format=1)


# ---------------------------------------------------------------- neighbor joining


@pytest.mark.parametrize("n", [4, 5, 8, 17, 40])
def test_nj_recovers_additive_tree_exactly(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    true_tree, dist, names = random_additive(rng, n)
    got = neighbor_joining(dist, names)
    assert robinson_foulds(got, true_tree).nrf == 0.0
    want, have = unrooted_edges(true_tree), unrooted_edges(got)
    assert have.keys() == want.keys()
    assert max(abs(have[k] - want[k]) for k in want) < 1e-9
    # The root is a trifurcation, as in Biopython and scikit-bio.
    assert len(got.children) == 3 and got.dist == 0.0
    assert all(len(node.children) == 2 for node in got.traverse() if not node.is_leaf() and not node.is_root())


def _test_matrices(n: int) -> list[np.ndarray]:
    """Two random and two additive matrices of n taxa."""
    out = []
    for seed in range(2):
        rng = np.random.default_rng(seed * 1000 + n)
        out += [random_matrix(rng, n), random_additive(rng, n)[1]]
    return out


@pytest.mark.parametrize("n", [5, 6, 7, 9, 12, 20, 30, 60])
def test_nj_topology_matches_biopython(n: int) -> None:
    names = [f"s{i}" for i in range(n)]
    for dist in _test_matrices(n):
        before = dist.copy()
        assert normalized_rf(neighbor_joining(dist, names), bio_nj(dist, names)) == 0.0
        assert np.array_equal(dist, before)  # the input is not modified


@pytest.mark.parametrize("n", [5, 6, 7, 9, 12, 20, 30])
def test_nj_topology_matches_skbio(n: int) -> None:
    pytest.importorskip("skbio", reason="scikit-bio (the benchmark extra) is not installed")
    names = [f"s{i}" for i in range(n)]
    for dist in _test_matrices(n):
        assert normalized_rf(neighbor_joining(dist, names), skbio_nj(dist, names)) == 0.0


def test_nj_branch_lengths_match_biopython() -> None:
    names = [f"s{i}" for i in range(25)]
    dist = random_matrix(np.random.default_rng(7), 25)
    # Biopython keeps negative lengths.
    ours = unrooted_edges(neighbor_joining(dist, names, clip_negative=False))
    theirs = unrooted_edges(bio_nj(dist, names))
    assert ours.keys() == theirs.keys()
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-9


def test_nj_branch_lengths_match_skbio() -> None:
    pytest.importorskip("skbio", reason="scikit-bio (the benchmark extra) is not installed")
    names = [f"s{i}" for i in range(25)]
    dist = random_matrix(np.random.default_rng(7), 25)
    # scikit-bio clips negative lengths to 0, as we do by default.
    ours, theirs = unrooted_edges(neighbor_joining(dist, names)), unrooted_edges(skbio_nj(dist, names))
    assert ours.keys() == theirs.keys()
    assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-9


def test_nj_negative_lengths_clipped_or_kept() -> None:
    # Far from additive: d(c, d) exceeds d(c, x) + d(x, d) through the others.
    dist = np.array([[0, 2, 3, 3], [2, 0, 3, 3], [3, 3, 0, 9], [3, 3, 9, 0.0]])
    link = nj_linkage(dist)
    assert (link.lengths < 0).any()
    clipped = neighbor_joining(dist)
    kept = neighbor_joining(dist, clip_negative=False)
    assert min(node.dist for node in clipped.traverse()) == 0.0
    assert min(node.dist for node in kept.traverse()) < 0
    assert normalized_rf(clipped, kept) == 0.0


def test_nj_small_and_degenerate_inputs() -> None:
    star = neighbor_joining(np.array([[0, 3, 4], [3, 0, 5], [4, 5, 0.0]]), ["a", "b", "c"])
    lengths = {leaf.name: leaf.dist for leaf in star.get_leaves()}
    assert lengths == pytest.approx({"a": 1.0, "b": 2.0, "c": 3.0})
    # All distances equal: ties everywhere, still a binary tree on all leaves.
    flat = np.ones((10, 10)) - np.eye(10)
    tree = neighbor_joining(flat)
    assert sorted(tree.get_leaf_names()) == sorted(f"t{i}" for i in range(10))
    # Identical sequences (zero distances) are fine.
    zeros = np.zeros((6, 6))
    assert len(neighbor_joining(zeros).get_leaves()) == 6


def test_nj_is_the_same_for_every_taxon_order() -> None:
    # p-distances of short sequences: many exact ties in Q.
    rng = np.random.default_rng(17)
    base = rng.integers(0, 4, size=12)
    codes = np.array([np.where(rng.random(12) < 0.2, rng.integers(0, 4, size=12), base) for _ in range(9)])
    names = [f"s{k}" for k in range(9)]
    dist = p_distance(codes, names)
    flat = np.ones((9, 9)) - np.eye(9)  # every pair tied
    for matrix in (dist, flat):
        want = neighbor_joining(matrix, names)
        by_index = set()
        for seed in range(12):
            perm = np.random.default_rng(seed).permutation(9)
            shuffled = matrix[np.ix_(perm, perm)]
            shuffled_names = [names[i] for i in perm]
            got = neighbor_joining(shuffled, shuffled_names)
            assert robinson_foulds(got, want).rf == 0
            by_index.add(linkage_to_tree(nj_linkage(shuffled), shuffled_names).get_topology_id())
        # Breaking ties by index instead would give several trees: the test can fail.
        assert len(by_index) > 1


@pytest.mark.parametrize(
    "dist, match",
    [
        (np.zeros((2, 2)), "at least 3"),
        (np.zeros((3, 4)), "square"),
        (np.array([[0, 1, 2], [1, 0, 3], [2, 3.5, 0]]), "not symmetric"),
        (np.array([[0, 1, 2], [1, 0, 3], [2, 3, 1.0]]), "diagonal"),
        (np.array([[0, 1, np.nan], [1, 0, 3], [np.nan, 3, 0]]), "non-finite"),
    ],
)
def test_nj_rejects_bad_matrices(dist: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        neighbor_joining(dist)


def test_nj_rejects_bad_names() -> None:
    dist = random_matrix(np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match="duplicate"):
        neighbor_joining(dist, ["a", "b", "a", "c"])
    with pytest.raises(ValueError, match="names"):
        neighbor_joining(dist, ["a", "b"])
