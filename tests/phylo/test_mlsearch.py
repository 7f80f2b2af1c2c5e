"""seqae.phylo.mlsearch: maximum-likelihood NNI search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import patristic_distances
from seqae.phylo.gtr import GTRGamma
from seqae.phylo.likelihood import TreeTensors, log_likelihood
from seqae.phylo.mlfit import empirical_freqs
from seqae.phylo.mlsearch import _apply_moves, _kids_table, _relabel, nni_gains, nni_search
from seqae.phylo.patterns import pattern_batch, site_patterns
from seqae.phylo.schedule import tree_batch, unrooted_tree
from tests.phylo.conftest import decoded_tree, simulated_family


def _setup(fams, trees):
    pats = [site_patterns(f.codes) for f in fams]
    tips, weights = pattern_batch(pats).tensors()
    batch = tree_batch([unrooted_tree(t, f.names) for t, f in zip(trees, fams)])
    model = GTRGamma(len(fams), 4, freqs=empirical_freqs(pats))
    lengths = torch.as_tensor(np.where(batch.lengths > 0, batch.lengths, 0.05))
    tt = TreeTensors.of(batch)
    return tt, tips, weights, model, lengths


def test_nni_gain_equals_the_likelihood_of_the_moved_tree():
    fam = simulated_family(7, 400, 5, height=0.6)
    tt, tips, weights, model, lengths = _setup([fam], [fam.tree])
    n = 7
    gains, central = nni_gains(tt, tips, weights, model, lengths)
    kids = _kids_table(tt.children, tt.root_children)
    for s in range(n - 3):
        # The current arrangement with its central branch at the optimum found.
        cur = lengths.clone()
        cur[0, n + s] = central[0, s, 0]
        with torch.no_grad():
            base = log_likelihood(tt, tips, weights, model, cur)
        for move in (0, 1):
            plan = torch.full((1, n - 3), -1)
            plan[0, s] = move
            new_kids, new_len = _apply_moves(kids, lengths, plan, central, n)
            moved = TreeTensors(new_kids[:, : n - 3, :2].contiguous(), new_kids[:, n - 3].contiguous(), tt.edge_mask)
            with torch.no_grad():
                value = log_likelihood(moved, tips, weights, model, new_len)
            assert float(value - base) == pytest.approx(float(gains[0, s, move]), abs=1e-6)


def test_relabel_keeps_the_tree_and_restores_post_order():
    fam = simulated_family(10, 50, 6)
    tt, _, _, _, lengths = _setup([fam], [fam.tree])
    n = 10
    kids = _kids_table(tt.children, tt.root_children)
    perm = torch.randperm(n - 3, generator=torch.Generator().manual_seed(0))
    # Shuffle the internal rows' numbering (not a post-order any more), then relabel.
    old_to_new = torch.arange(2 * n - 2)
    old_to_new[n : 2 * n - 3] = n + perm
    shuffled = torch.full_like(kids, -1)
    shuffled[0, perm] = kids[0, : n - 3]
    shuffled[0, -1] = kids[0, -1]
    shuffled = torch.where(shuffled >= 0, old_to_new[shuffled.clamp_min(0)], shuffled)
    shuffled_len = torch.zeros_like(lengths).scatter(1, old_to_new[None, : 2 * n - 3], lengths)
    table, ell = _relabel(shuffled, shuffled_len, n)
    parents = n + torch.arange(n - 2)
    assert (table[0].max(-1).values < parents).all()
    before = decoded_tree(tt.children, tt.root_children, lengths, fam.names)
    after = decoded_tree(table[:, : n - 3, :2], table[:, n - 3], ell, fam.names)
    assert normalized_rf(before, after) == 0.0
    np.testing.assert_allclose(patristic_distances(before, fam.names)[0], patristic_distances(after, fam.names)[0])


def test_nni_search_climbs_back_to_the_true_tree():
    fams = [simulated_family(6, 800, 7, height=0.5)]
    # Start each family from its true tree with two cherries' leaves swapped (a distant topology).
    starts = []
    for f in fams:
        t = f.tree.copy()
        leaves = t.get_leaves()
        leaves[0].name, leaves[-1].name = leaves[-1].name, leaves[0].name
        starts.append(t)
    tt, tips, weights, model, lengths = _setup(fams, starts)
    before = log_likelihood(tt, tips, weights, model, lengths)
    res = nni_search(tt.children, tt.root_children, lengths, tips, weights, model)
    assert (res.log_likelihood > before).all()
    for k, f in enumerate(fams):
        tree = decoded_tree(res.children, res.root_children, res.lengths, f.names, k)
        assert normalized_rf(tree, f.tree) == 0.0


def test_perturbed_search_never_loses_likelihood():
    from seqae.phylo.mlsearch import perturbed_search

    fams = [simulated_family(8, 300, seed) for seed in (50, 51)]
    tt, tips, weights, model, lengths = _setup(fams, [f.tree for f in fams])
    first = nni_search(tt.children, tt.root_children, lengths, tips, weights, model, max_rounds=3)
    seen = []
    best = perturbed_search(first, tips, weights, model, rounds=2, max_rounds=3, on_round=seen.append)
    assert (best.log_likelihood >= first.log_likelihood - 1e-9).all()
    # on_round sees the best trees so far after each round, never a worse likelihood.
    assert len(seen) == 2 and seen[-1] is best
    assert (seen[1].log_likelihood >= seen[0].log_likelihood).all()
    for k, f in enumerate(fams):
        tree = decoded_tree(best.children, best.root_children, best.lengths, f.names, k)
        assert sorted(tree.get_leaf_names()) == sorted(f.names)
    # The kept trees' likelihoods are their own.
    moved = TreeTensors(best.children, best.root_children, tt.edge_mask)
    assert torch.allclose(log_likelihood(moved, tips, weights, model, best.lengths), best.log_likelihood)


def test_families_climbed_together_reach_the_trees_they_reach_alone():
    # The climb goes on with fewer and fewer families (those that moved last); each family's
    # tree, moves and likelihood must be written back to its own row.
    fams = [simulated_family(8, 400, seed, height=0.5) for seed in (60, 61, 62)]
    starts = []
    for k, f in enumerate(fams):
        t = f.tree.copy()
        leaves = t.get_leaves()
        for i in range(k):  # 0, 1 and 2 leaf swaps: families stop climbing after different rounds
            leaves[i].name, leaves[-1 - i].name = leaves[-1 - i].name, leaves[i].name
        starts.append(t)
    tt, tips, weights, model, lengths = _setup(fams, starts)
    together = nni_search(tt.children, tt.root_children, lengths, tips, weights, model, model_every=0)
    moved = TreeTensors(together.children, together.root_children, tt.edge_mask)
    assert torch.allclose(log_likelihood(moved, tips, weights, model, together.lengths), together.log_likelihood)
    for k, f in enumerate(fams):
        one = torch.tensor([k])
        alone = nni_search(
            tt.children[one], tt.root_children[one], lengths[one], tips[one], weights[one], model.rows(one),
            model_every=0,
        )  # fmt: skip
        tree_together = decoded_tree(together.children, together.root_children, together.lengths, f.names, k)
        tree_alone = decoded_tree(alone.children, alone.root_children, alone.lengths, f.names, 0)
        assert normalized_rf(tree_together, tree_alone) == 0.0
        assert together.moves[k] == alone.moves[0]
        # Newton steps only ever raise a likelihood; a family left out of later rounds gets a final pass.
        assert float(together.log_likelihood[k]) >= float(alone.log_likelihood[0]) - 1e-6
