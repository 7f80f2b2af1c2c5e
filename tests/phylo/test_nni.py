"""seqae.phylo.nni: balanced minimum evolution lengths and NNI refinement."""

from __future__ import annotations

import io

import numpy as np
import pytest

from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import jc69_distance, p_distance, patristic_distances
from seqae.phylo.ete import Tree
from seqae.phylo.nj import neighbor_joining
from seqae.phylo.nni import bme_length, bme_nni, resolve_flat_branches
from seqae.phylo.simulate import SubstitutionModel, simulate_family
from tests.phylo.conftest import random_additive, random_matrix, simulated_family, unrooted_edges


def _same_node(tree: Tree, node: Tree) -> Tree:
    """The node of ``tree`` (a copy) that stands where ``node`` stands in the original."""
    if node.is_leaf():
        return tree.search_nodes(name=node.name)[0]
    return tree.get_common_ancestor(node.get_leaf_names())


def pauplin_length(tree: Tree, dist: np.ndarray, names: list[str]) -> float:
    """BME length by its definition, sum_{i<j} 2^(1 - tau_ij) d_ij, with tau from unit branch lengths."""
    unit = tree.copy()
    for node in unit.traverse():
        node.dist = 0.0 if node.is_root() else 1.0
    tau, _ = patristic_distances(unit, names)
    upper = np.triu_indices(len(names), 1)
    return float((2.0 ** (1.0 - tau) * dist)[upper].sum())


@pytest.mark.parametrize("n", [4, 6, 15, 40])
def test_bme_length_and_branch_lengths_follow_their_definitions(n: int) -> None:
    rng = np.random.default_rng(300 + n)
    names = [f"s{i}" for i in range(n)]
    dist = random_matrix(rng, n)
    start = neighbor_joining(dist, names)
    assert bme_length(start, dist, names) == pytest.approx(pauplin_length(start, dist, names), rel=1e-12)
    result = bme_nni(start, dist, names, clip_negative=False)
    # The reported length is the BME length of the returned topology, and
    # (Pauplin) the sum of its BME branch lengths.
    assert result.length_after == pytest.approx(pauplin_length(result.tree, dist, names), rel=1e-12)
    assert result.length_after == pytest.approx(sum(node.dist for node in result.tree.traverse()), rel=1e-12)
    assert result.length_after <= result.length_before + 1e-12


@pytest.mark.parametrize("n", [6, 12, 30])
def test_bme_nni_recovers_additive_tree_from_a_wrong_start(n: int) -> None:
    rng = np.random.default_rng(400 + n)
    true_tree, dist, names = random_additive(rng, n)
    noisy = dist * rng.lognormal(0.0, 0.6, size=dist.shape)
    noisy = np.triu(noisy, 1) + np.triu(noisy, 1).T
    start = neighbor_joining(noisy, names)
    assert normalized_rf(start, true_tree) > 0  # the start is wrong
    result = bme_nni(start, dist, names)
    assert result.interchanges > 0
    assert normalized_rf(result.tree, true_tree) == 0.0
    want, have = unrooted_edges(true_tree), unrooted_edges(result.tree)
    assert have.keys() == want.keys()
    assert max(abs(have[k] - want[k]) for k in want) < 1e-9
    assert len(result.tree.children) == 3
    assert all(len(node.children) == 2 for node in result.tree.traverse() if not node.is_leaf() and not node.is_root())


def test_bme_nni_ends_at_a_local_optimum_and_keeps_good_trees() -> None:
    rng = np.random.default_rng(5)
    names = [f"s{i}" for i in range(25)]
    dist = random_matrix(rng, 25)
    first = bme_nni(neighbor_joining(dist, names), dist, names)
    again = bme_nni(first.tree, dist, names)
    assert again.interchanges == 0
    assert again.length_after == pytest.approx(first.length_after, rel=1e-12)
    # Every single NNI of the result is longer (checked by brute force on ete3 copies).
    for node in first.tree.traverse():
        if node.is_leaf() or node.is_root() or node.up is None:
            continue
        for child in node.children:
            for other in node.up.children:
                if other is node:
                    continue
                alt = first.tree.copy()
                a, b = (_same_node(alt, x) for x in (child, other))
                pa, pb = a.up, b.up
                a.detach(), b.detach()
                pa.add_child(b), pb.add_child(a)
                assert pauplin_length(alt, dist, names) >= first.length_after - 1e-9
    # A rooted (bifurcating-root) start is accepted, and the additive tree stays put.
    true_tree, additive, leaf_names = random_additive(rng, 10)
    kept = bme_nni(true_tree, additive, leaf_names)
    assert kept.interchanges == 0 and normalized_rf(kept.tree, true_tree) == 0.0


def test_bme_nni_matches_skbio() -> None:
    pytest.importorskip("skbio", reason="scikit-bio (the benchmark extra) is not installed")
    import skbio
    from skbio.tree import nni as skbio_nni

    model = SubstitutionModel.hky85(2.0, alpha=0.5)
    for seed in range(6):
        fam = simulate_family(30, 300, np.random.default_rng(seed), model=model, height=1.0)
        dist = p_distance(fam.codes, fam.names)
        start = neighbor_joining(dist, fam.names)
        dm = skbio.DistanceMatrix(dist, fam.names)
        theirs = skbio_nni(skbio.TreeNode.read(io.StringIO(start.write(format=5))), dm, balanced=True)
        ours = bme_nni(start, dist, fam.names).tree
        assert normalized_rf(ours, Tree(str(theirs).strip(), format=1)) == 0.0


def test_bme_nni_rejects_bad_input() -> None:
    names = ["a", "b", "c", "d", "e"]
    dist = random_matrix(np.random.default_rng(1), 5)
    with pytest.raises(ValueError, match="not binary"):
        bme_nni(Tree("(a,b,c,d,e);"), dist, names)
    with pytest.raises(ValueError, match="not among"):
        bme_nni(Tree("((a,b),(c,x),e);"), dist, names)
    with pytest.raises(ValueError, match="lacks"):
        bme_nni(Tree("((a,b),c,d);"), dist, names)
    with pytest.raises(ValueError, match="at least 4"):
        bme_nni(Tree("(a,b,c);"), dist[:3, :3], names[:3])
    with pytest.raises(ValueError, match="non-finite"):
        bme_nni(Tree("((a,b),(c,d),e);"), np.full((5, 5), np.nan), names)


def _scramble_flat(tree: Tree, rng: np.random.Generator, k: int) -> tuple[Tree, list[frozenset[str]]]:
    """A copy of ``tree`` with ``k`` node-disjoint internal branches set to length 0 and then NNI-swapped.

    Returns the copy and the true splits (``unrooted_edges`` keys) the swaps removed.
    """
    out = tree.copy()
    truth = unrooted_edges(out)
    used: set[int] = set()
    removed = []
    inner = [x for x in out.traverse() if not x.is_leaf() and not x.is_root() and not x.up.is_root()]
    for node in rng.permutation(len(inner)):
        u = inner[node]
        if id(u) in used or id(u.up) in used or len(removed) == k:
            continue
        v = u.up
        before = set(unrooted_edges(out))
        u.dist = 0.0
        x = u.children[int(rng.integers(2))]
        y = next(c for c in v.children if c is not u)
        x.detach(), y.detach()
        u.add_child(y), v.add_child(x)
        removed.extend(before - set(unrooted_edges(out)))
        used.update({id(u), id(v)} | {id(c) for c in u.children} | {id(c) for c in v.children})
    assert len(removed) == k and all(split in truth for split in removed)
    return out, removed


def test_resolve_flat_branches_restores_the_bme_resolution_and_moves_nothing_else() -> None:
    rng = np.random.default_rng(17)
    true_tree, dist, names = random_additive(rng, 24)
    scrambled, removed = _scramble_flat(true_tree, rng, 3)
    assert normalized_rf(scrambled, true_tree) > 0
    resolved, swaps = resolve_flat_branches(scrambled, dist, names, max_length=1e-5)
    # On additive distances BME prefers the true tree: every flat branch is resolved as it was.
    assert normalized_rf(resolved, true_tree) == 0.0
    assert swaps >= len(removed)
    # Every subtree kept its own branch length, and the flat branches stayed flat.
    want = unrooted_edges(true_tree)
    for split in removed:
        want[split] = 0.0
    have = unrooted_edges(resolved)
    assert have.keys() == want.keys()
    assert max(abs(have[key] - want[key]) for key in want) < 1e-12
    assert len(resolved.children) == 3


def test_resolve_flat_branches_keeps_every_branch_that_is_not_flat() -> None:
    rng = np.random.default_rng(8)
    tree, _, names = random_additive(rng, 18)  # a random topology ...
    dist = random_matrix(rng, 18)  # ... and distances it does not fit: BME would move many branches if it could
    for node in tree.traverse():
        node.dist = 0.0 if node.is_root() else 0.1
    same, swaps = resolve_flat_branches(tree, dist, names)
    assert swaps == 0 and unrooted_edges(same) == pytest.approx(unrooted_edges(tree))
    assert bme_nni(tree, dist, names).interchanges > 0
    # With some branches flat, only their splits may change.
    flat = [x for x in tree.traverse() if not x.is_leaf() and not x.is_root()][::3]
    for node in flat:
        node.dist = 0.0
    kept = {split for split, length in unrooted_edges(tree).items() if length > 0}
    resolved, _ = resolve_flat_branches(tree, dist, names)
    assert kept <= set(unrooted_edges(resolved))
    assert bme_length(resolved, dist, names) <= bme_length(tree, dist, names) + 1e-12


def test_resolving_flat_branches_leaves_the_likelihood_unchanged() -> None:
    import torch

    from seqae.phylo.gtr import GTRGamma
    from seqae.phylo.likelihood import TreeTensors, log_likelihood
    from seqae.phylo.mlfit import empirical_freqs
    from seqae.phylo.patterns import pattern_batch, site_patterns
    from seqae.phylo.schedule import tree_batch, unrooted_tree

    fam = simulated_family(16, 300, 4, height=0.8)
    scrambled, _ = _scramble_flat(fam.tree, np.random.default_rng(2), 2)
    jc = jc69_distance(fam.codes)
    resolved, swaps = resolve_flat_branches(scrambled, jc, fam.names)
    assert swaps > 0 and normalized_rf(resolved, scrambled) > 0
    pats = [site_patterns(fam.codes)]
    tips, weights = pattern_batch(pats).tensors()
    model = GTRGamma(1, 4, freqs=empirical_freqs(pats))
    values = []
    for tree in (scrambled, resolved):
        batch = tree_batch([unrooted_tree(tree, fam.names)])
        with torch.no_grad():
            values.append(
                float(log_likelihood(TreeTensors.of(batch), tips, weights, model, torch.as_tensor(batch.lengths)))
            )
    assert values[1] == pytest.approx(values[0], abs=1e-8)
