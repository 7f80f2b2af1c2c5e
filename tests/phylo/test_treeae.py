"""seqae.phylo.treeae: the tree autoencoder on a tiny family."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.errors import ConfigError
from seqae.phylo.distance import patristic_distances
from seqae.phylo.ete import Tree
from seqae.phylo.simulate import SubstitutionModel, simulate_family
from seqae.phylo.treeae import TreeAESettings, fit_tree_autoencoder, read_latent_tree
from tests.phylo.conftest import TINY

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---------------------------------------------------------------- tree autoencoder


@pytest.mark.parametrize("geometry", ["sqeuclidean", "euclidean", "poincare"])
def test_fit_returns_tree_on_the_family(family, geometry: str) -> None:
    result = fit_tree_autoencoder(family.codes, family.names, {**TINY, "geometry": geometry})
    assert sorted(result.tree.get_leaf_names()) == sorted(family.names)
    assert result.distances.shape == (8, 8) and np.isfinite(result.distances).all()
    assert np.allclose(result.distances, result.distances.T) and (np.diag(result.distances) == 0).all()
    assert result.latent.shape == (8, 8)
    if geometry == "poincare":
        assert (np.linalg.norm(result.latent, axis=1) < 1).all()
    for value in (result.auc_before, result.auc_after, result.auc_after_cotrained, result.disc_score):
        assert 0.0 <= value <= 1.0
    assert result.epochs_run == TINY["epochs"] + TINY["adversarial_epochs"]
    # Training lowered the distance loss.
    assert result.history["distance"][-1] < 0.5 * result.history["distance"][0]


def test_fit_draws_on_the_users_real_trees(family) -> None:
    # Real trees of other leaf counts than the family's: the judge and the adversary draw
    # subsets from those large enough for each subset size (a 5-leaf tree serves only
    # 4- and 5-leaf subsets). This once crashed: the list reached code wanting one tensor.
    other = simulate_family(5, 50, np.random.default_rng(3), SubstitutionModel.hky85(2.0), height=0.4)
    bigger = simulate_family(12, 50, np.random.default_rng(4), SubstitutionModel.hky85(2.0), height=0.4)
    trees = [patristic_distances(read_tree_text(f.newick()))[0] for f in (other, bigger)]
    with_trees = fit_tree_autoencoder(family.codes, family.names, TINY, reference_trees=trees)
    without = fit_tree_autoencoder(family.codes, family.names, TINY)
    assert sorted(with_trees.tree.get_leaf_names()) == sorted(family.names)
    assert 0.0 <= with_trees.auc_before <= 1.0 and 0.0 <= with_trees.disc_score <= 1.0
    # The user's trees reach the judge: its scores differ from a judge trained without them.
    assert with_trees.auc_before != without.auc_before or with_trees.disc_score != without.disc_score


def read_tree_text(newick: str) -> Tree:
    return Tree(newick, format=1)


def test_fit_is_seeded(family) -> None:
    settings = {**TINY, "adversarial_epochs": 0, "epochs": 40}
    a = fit_tree_autoencoder(family.codes, family.names, settings)
    b = fit_tree_autoencoder(family.codes, family.names, settings)
    assert np.array_equal(a.distances, b.distances)


def test_settings_reject_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        TreeAESettings.from_mapping({"latent_dims": 3})
    with pytest.raises(ConfigError, match=r"^trees\.geometry: 'spherical' is not one of"):
        TreeAESettings.from_mapping({"geometry": "spherical"})
    with pytest.raises(ConfigError, match="tree_search"):
        TreeAESettings.from_mapping({"tree_search": "spr"})


def test_latent_tree_search() -> None:
    """``nj`` is neighbor joining as is; ``bme_nni`` refines it and never lengthens it under BME."""
    from seqae.phylo.compare import normalized_rf
    from seqae.phylo.nj import neighbor_joining
    from seqae.phylo.nni import bme_length

    rng = np.random.default_rng(11)
    names = [f"t{i}" for i in range(30)]
    x = rng.random((30, 30))
    dist = x + x.T
    np.fill_diagonal(dist, 0.0)
    nj = neighbor_joining(dist, names)
    assert normalized_rf(read_latent_tree(dist, names, "nj"), nj) == 0.0
    refined = read_latent_tree(dist, names, "bme_nni")
    assert normalized_rf(refined, nj) > 0  # random distances: NJ is not a BME local optimum
    assert bme_length(refined, dist, names) < bme_length(nj, dist, names)


@pytest.mark.parametrize("shape", ["identical", "few_sites"])
def test_fit_takes_identical_sequences_and_fewer_sites_than_taxa(shape: str) -> None:
    """trees.model: points failed on these: 0/0 in the whitening (identical sequences: 'distance matrix has a
    non-finite value'), and a shape error when 4 x sites < taxa - 1 (a traceback)."""
    rng = np.random.default_rng(0)
    n = 9
    codes = np.repeat(rng.integers(0, 4, (1, 40)), n, axis=0) if shape == "identical" else rng.integers(0, 4, (n, 1))
    names = [f"s{i}" for i in range(n)]
    result = fit_tree_autoencoder(codes.astype(np.uint8), names, {**TINY, "epochs": 10, "adversarial_epochs": 2})
    assert sorted(result.tree.get_leaf_names()) == names
    assert all(np.isfinite(node.dist) for node in result.tree.traverse())
