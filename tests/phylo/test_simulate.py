"""seqae.phylo.simulate: substitution models, tree shapes and simulated families."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import jc69_distance, pair_counts, patristic_distances
from seqae.phylo.ete import Tree
from seqae.phylo.nj import neighbor_joining
from seqae.phylo.simulate import (
    SubstitutionModel,
    birth_death_tree,
    coalescent_tree,
    gamma_category_rates,
    simulate_family,
)


def test_transition_matrices() -> None:
    from scipy.linalg import expm

    model = SubstitutionModel.gtr([1.0, 2.5, 0.5, 0.8, 3.0, 1.0], [0.1, 0.2, 0.3, 0.4], alpha=0.5)
    q = model.rate_matrix()
    assert np.allclose(q.sum(axis=1), 0.0)
    assert -(model.freqs @ np.diagonal(q)) == pytest.approx(1.0)  # one substitution per unit time
    lengths = np.array([0.0, 0.05, 0.7])
    p = model.transition_matrices(lengths)
    rates = model.category_rates()
    assert p.shape == (3, 4, 4, 4)
    assert np.allclose(p.sum(axis=-1), 1.0)
    assert np.allclose(p[0], np.eye(4))
    for b, t in enumerate(lengths):
        for c, r in enumerate(rates):
            assert np.allclose(p[b, c], expm(q * t * r), atol=1e-12)
            assert np.allclose(model.freqs @ p[b, c], model.freqs)  # stationary


def test_gamma_category_rates_match_yang_1994() -> None:
    # Yang (1994) / PAML, alpha = 0.5, 4 categories, category means.
    assert gamma_category_rates(0.5) == pytest.approx([0.0334, 0.2519, 0.8203, 2.8944], abs=1e-4)
    assert gamma_category_rates(2.0).mean() == pytest.approx(1.0)
    assert gamma_category_rates(1.0, 1).tolist() == [1.0]


def test_trees_have_requested_shape_and_height() -> None:
    rng = np.random.default_rng(5)
    for tree in (
        birth_death_tree(30, rng, height=0.4),
        coalescent_tree(30, rng, height=0.4),
        birth_death_tree(30, rng, height=0.4, death=0.5),
    ):
        assert tree.root_to_tip() == pytest.approx(np.full(30, 0.4))
        ete = tree.to_ete()
        assert sorted(ete.get_leaf_names()) == sorted(tree.names)
        assert all(len(node.children) == 2 for node in ete.traverse() if not node.is_leaf())
        assert min(node.dist for node in ete.traverse() if not node.is_root()) >= 0
    relaxed = birth_death_tree(40, rng, height=0.4, clock_sd=0.5).root_to_tip()
    assert relaxed.mean() == pytest.approx(0.4) and relaxed.std() > 0.01


def test_simulation_is_deterministic() -> None:
    a = simulate_family(10, 300, np.random.default_rng(11), SubstitutionModel.hky85(3.0, alpha=0.7))
    b = simulate_family(10, 300, np.random.default_rng(11), SubstitutionModel.hky85(3.0, alpha=0.7))
    c = simulate_family(10, 300, np.random.default_rng(12), SubstitutionModel.hky85(3.0, alpha=0.7))
    assert np.array_equal(a.codes, b.codes) and a.newick() == b.newick()
    assert not np.array_equal(a.codes, c.codes)
    assert a.codes.dtype == np.uint8 and a.codes.shape == (10, 300) and a.codes.max() <= 3
    assert list(a.sequences()) == a.names
    assert a.params["model"] == "HKY85+G4" and a.params["alpha"] == 0.7
    assert normalized_rf(Tree(a.newick()), a.tree) == 0.0


def test_base_frequencies_follow_the_model() -> None:
    freqs = [0.1, 0.2, 0.3, 0.4]
    family = simulate_family(8, 20000, np.random.default_rng(2), SubstitutionModel.hky85(2.0, freqs))
    observed = np.bincount(family.codes.ravel(), minlength=4) / family.codes.size
    assert observed == pytest.approx(freqs, abs=0.01)


def test_transition_transversion_ratio_increases_with_kappa() -> None:
    ratios = []
    for kappa in (1.0, 4.0, 16.0):
        family = simulate_family(6, 20000, np.random.default_rng(21), SubstitutionModel.hky85(kappa), height=0.2)
        counts = pair_counts(family.codes)
        ratios.append(counts.transitions.sum() / counts.transversions.sum())
    assert ratios[0] == pytest.approx(0.5, abs=0.05)  # JC69: one transition partner, two transversions
    assert ratios[0] < ratios[1] < ratios[2]


def test_gamma_heterogeneity_makes_more_constant_sites() -> None:
    constant = []
    for alpha in (None, 1.0, 0.2):
        family = simulate_family(10, 20000, np.random.default_rng(8), SubstitutionModel.jc69(alpha=alpha), height=0.5)
        constant.append(float((family.codes == family.codes[0]).all(axis=0).mean()))
    assert constant[0] < constant[1] < constant[2]


def test_jc69_nj_recovers_true_tree_on_long_alignment() -> None:
    family = simulate_family(12, 20000, np.random.default_rng(1), SubstitutionModel.jc69(), height=0.3)
    tree = neighbor_joining(jc69_distance(family.codes), family.names)
    assert normalized_rf(tree, family.tree) == 0.0
    # The estimated path lengths approach the true ones.
    truth = patristic_distances(family.tree, family.names)[0]
    assert np.abs(patristic_distances(tree, family.names)[0] - truth).max() < 0.03
