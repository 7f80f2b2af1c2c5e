"""seqae.phylo.discriminator: the phylogeny discriminator and its AUC."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.phylo.discriminator import (
    DiscriminatorSettings,
    PhylogenyDiscriminator,
    auc,
    eval_sizes,
    heldout_auc,
    random_subsets,
    reference_metrics,
    row_profiles,
    sample_reference_trees,
    train_discriminator,
    tree_arrays_metric,
)
from seqae.phylo.distance import patristic_distances
from seqae.phylo.ete import Tree

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _caterpillar(n: int, rng: np.random.Generator) -> np.ndarray:
    names = [f"t{i}" for i in range(n)]
    root = node = Tree()
    for i in range(n - 1):
        node.add_child(name=names[i], dist=rng.uniform(0.5, 1.5))
        node = node.add_child(dist=rng.uniform(0.5, 1.5))
    node.name = names[-1]
    return patristic_distances(root, names)[0]


def _balanced(n: int, rng: np.random.Generator) -> np.ndarray:
    names = [f"t{i}" for i in range(n)]

    def build(leaves):
        if len(leaves) == 1:
            return Tree(name=leaves[0])
        node = Tree()
        half = len(leaves) // 2
        for part in (leaves[:half], leaves[half:]):
            node.add_child(build(part), dist=rng.uniform(0.5, 1.5))
        return node

    return patristic_distances(build(names), names)[0]


def _pool(make, n: int, count: int, rng) -> torch.Tensor:
    return torch.tensor(np.stack([make(n, rng) for _ in range(count)]), dtype=torch.float32)


def test_discriminator_separates_caterpillars_from_balanced_trees() -> None:
    rng = np.random.default_rng(0)
    n = 12
    cat, bal = _pool(_caterpillar, n, 64, rng), _pool(_balanced, n, 64, rng)
    cat_test, bal_test = _pool(_caterpillar, n, 64, rng), _pool(_balanced, n, 64, rng)
    settings = DiscriminatorSettings(steps=80, batch=32, hidden=32)
    disc = train_discriminator(cat, bal, settings, seed=0)
    assert heldout_auc(disc, cat_test, bal_test, eval_sizes(n, 8)) > 0.9


def test_discriminator_is_at_chance_on_identical_distributions() -> None:
    rng = np.random.default_rng(1)
    n = 12
    a, b = _pool(_caterpillar, n, 64, rng), _pool(_caterpillar, n, 64, rng)
    a_test, b_test = _pool(_caterpillar, n, 128, rng), _pool(_caterpillar, n, 128, rng)
    disc = train_discriminator(a, b, DiscriminatorSettings(steps=80, batch=32, hidden=32), seed=0)
    assert abs(heldout_auc(disc, a_test, b_test, eval_sizes(n, 8), per_size=128) - 0.5) < 0.12


def test_discriminator_input_is_invariant_to_leaf_order_scale_and_rooting() -> None:
    rng = np.random.default_rng(2)
    arrays = sample_reference_trees(9, 1, rng)[0]
    dist = tree_arrays_metric(arrays)
    # Path lengths of the TreeArrays match ete3's, whatever the root.
    tree = arrays.to_ete()
    assert np.allclose(dist, patristic_distances(tree, arrays.names)[0])
    tree.set_outgroup(tree.get_leaves()[3])
    assert np.allclose(dist, patristic_distances(tree, arrays.names)[0])
    disc = PhylogenyDiscriminator(n_quantiles=8, hidden=8)
    x = torch.tensor(dist, dtype=torch.float32)[None]
    perm = torch.as_tensor(rng.permutation(9))
    y = 3.7 * x[:, perm][:, :, perm]
    with torch.no_grad():
        assert torch.allclose(disc(x), disc(y), atol=1e-5)
    assert row_profiles(x, 8).shape == (1, 9, 8)
    sub = random_subsets(x[0], 5, 4)
    assert sub.shape == (4, 5, 5) and torch.all(sub.diagonal(dim1=1, dim2=2) == 0)
    assert reference_metrics(6, 3, rng).shape == (3, 6, 6)


def test_auc() -> None:
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert auc(np.ones(5), np.ones(5)) == 0.5
