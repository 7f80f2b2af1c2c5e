"""seqae.phylo.hypertree: hyperbolic points trained by the likelihood, decoded into trees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.errors import ConfigError
from seqae.phylo.compare import normalized_rf
from seqae.phylo.hypertree import LatentTreeSettings, fit_latent_trees, poincare_distance_matrix
from tests.phylo.conftest import simulated_family


def test_poincare_distances_are_a_metric_with_zero_diagonal():
    x = torch.tensor([[[0.0, 0.0], [0.5, 0.0], [0.0, 0.9]]], dtype=torch.float64)
    d = poincare_distance_matrix(x)
    assert torch.allclose(torch.diagonal(d[0]), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(
        d[0, 0, 1], 2 * torch.atanh(torch.tensor(0.5, dtype=torch.float64))
    )  # from the origin: 2 atanh r
    assert torch.allclose(d, d.transpose(1, 2))


def test_poincare_distances_of_coincident_points_are_zero_with_a_finite_gradient():
    # Identical sequences have equal MDS coordinates: their points coincide exactly.
    x = torch.tensor([[[0.1, 0.2], [0.1, 0.2], [0.5, -0.3], [0.0, 0.6]]], dtype=torch.float64, requires_grad=True)
    d = poincare_distance_matrix(x)
    assert d[0, 0, 1] == 0.0 and d[0, 1, 0] == 0.0
    apart = poincare_distance_matrix(x[:, 1:].detach())
    assert torch.allclose(d[:, 1:, 1:], apart)
    ((d - 1.0) ** 2).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[0, 0], x.grad[0, 1])  # pulled alike: they stay together


SMALL = LatentTreeSettings(dim=4, init_steps=40, epochs=5, nni_rounds=2, judge=False)


def test_fit_latent_trees_batches_by_size_and_refines():
    fams = [simulated_family(7, 150, 11), simulated_family(5, 150, 12), simulated_family(7, 150, 13)]
    out = fit_latent_trees([(f.codes, f.names) for f in fams], SMALL)
    assert len(out) == 3
    for f, lat in zip(fams, out):
        assert {leaf.name for leaf in lat.tree.get_leaves()} == set(f.names)
        assert lat.points.shape == (len(f.names), 4)
        assert (np.linalg.norm(lat.points, axis=1) < 1).all()  # inside the ball
        assert np.isfinite(lat.log_likelihood)
        # ML lengths and NNIs never lose likelihood against the decoded tree (same model).
        assert lat.log_likelihood >= lat.decoded_log_likelihood - 1e-6
        assert len(lat.trace) == SMALL.epochs


def test_fit_latent_trees_shows_each_phase_with_its_rate_and_likelihood_only_when_asked(capsys):
    fam = simulated_family(6, 120, 31)
    settings = LatentTreeSettings(dim=4, init_steps=10, epochs=3, nni_rounds=2, perturbations=2, judge=False)
    quiet = fit_latent_trees([(fam.codes, fam.names)], settings)[0]
    assert capsys.readouterr().err == ""
    shown = fit_latent_trees([(fam.codes, fam.names)], settings, progress=True)[0]
    err = capsys.readouterr().err
    # One bar per phase, named with the batch (taxa x families), its total and unit (1 climb + 2 perturbations).
    for phase, total, unit in [
        ("distance fit", 10, "step"),
        ("likelihood training", 3, "epoch"),
        ("ML search", 3, "round"),
    ]:
        assert f"trees n=6 x1 {phase}:" in err and f"0/{total} " in err and f"{unit}/s]" in err
    assert shown.log_likelihood == quiet.log_likelihood  # drawing changes nothing


def test_fit_latent_trees_does_not_depend_on_row_order():
    fam = simulated_family(7, 200, 21)
    perm = np.random.default_rng(0).permutation(7)
    a = fit_latent_trees([(fam.codes, fam.names)], SMALL)[0]
    b = fit_latent_trees([(fam.codes[perm], [fam.names[i] for i in perm])], SMALL)[0]
    assert normalized_rf(a.tree, b.tree) == 0.0
    assert a.log_likelihood == pytest.approx(b.log_likelihood, abs=1e-6)


def test_identical_sequences_are_fitted_as_a_cherry():
    fam = simulated_family(7, 200, 31)
    codes = np.concatenate([fam.codes, fam.codes[:2]])
    names = [*fam.names, "copy_a", "copy_b"]
    lat = fit_latent_trees([(codes, names)], SMALL)[0]
    assert np.isfinite(lat.log_likelihood) and np.isfinite(lat.points).all()
    tree = lat.tree.copy()
    for original, copy in ((fam.names[0], "copy_a"), (fam.names[1], "copy_b")):
        tree.set_outgroup(fam.names[-1])  # a leaf outside the pair: the pair's split is then a clade
        cherry = tree.get_common_ancestor(original, copy)
        assert {leaf.name for leaf in cherry.get_leaves()} == {original, copy}


def test_latent_settings_reject_bad_values():
    with pytest.raises(ConfigError, match=r"^trees\.latent_tree\.refine: 'spr' is not one of"):
        LatentTreeSettings(refine="spr")
    with pytest.raises(ConfigError, match="flat_resolution"):
        LatentTreeSettings(flat_resolution="parsimony")
    with pytest.raises(ConfigError, match="unknown key"):
        LatentTreeSettings.from_mapping({"dims": 3})
    with pytest.raises(ValueError, match="at least 4"):
        fit_latent_trees([(np.zeros((3, 10), dtype=np.uint8), ["a", "b", "c"])])


@pytest.mark.parametrize("how", ["jc69", "none"])
def test_flat_resolution_changes_only_zero_length_branches(how: str, monkeypatch):
    import seqae.phylo.hypertree as hypertree
    from tests.phylo.conftest import unrooted_edges

    resolved = []
    resolve = hypertree.resolve_flat_branches
    monkeypatch.setattr(hypertree, "resolve_flat_branches", lambda *a, **k: resolved.append(1) or resolve(*a, **k))

    # Few sites for 12 taxa: some ML internal branches end at zero length.
    fams = [simulated_family(12, 60, seed, height=0.4) for seed in (31, 32)]
    settings = LatentTreeSettings(dim=4, init_steps=40, epochs=5, nni_rounds=4, perturbations=2, judge=False,
                                  flat_resolution=how)  # fmt: skip
    out = fit_latent_trees([(f.codes, f.names) for f in fams], settings)
    assert len(resolved) == (0 if how == "none" else len(fams))
    if how == "none":
        assert all(lat.tree is lat.search_tree and lat.flat_interchanges == 0 for lat in out)
        return
    from seqae.phylo.distance import jc69_distance
    from seqae.phylo.hypertree import FLAT_LENGTH
    from seqae.phylo.nni import resolve_flat_branches

    n_flat = 0
    for fam, lat in zip(fams, out, strict=True):
        before, after = unrooted_edges(lat.search_tree), unrooted_edges(lat.tree)
        flat = {k for k, v in before.items() if v <= 1e-5}
        n_flat += len(flat)
        assert set(before) - flat <= set(after)  # every split with length is kept
        assert sorted(before.values()) == pytest.approx(sorted(after.values()))
        # The search tree's flat branches went through resolve_flat_branches, on the family's JC69
        # distances (whether an interchange shortens the tree there depends on the fitted tree, which
        # varies in the last bits between CPUs; test_nni pins what the resolution does).
        order = np.argsort(np.asarray(fam.names, dtype=object), kind="stable")
        names = [fam.names[i] for i in order]
        expected, moves = resolve_flat_branches(lat.search_tree, jc69_distance(fam.codes[order]), names, FLAT_LENGTH)
        assert lat.flat_interchanges == moves
        assert unrooted_edges(lat.tree).keys() == unrooted_edges(expected).keys()
    assert n_flat > 0  # the few sites left internal branches at zero length: the case resolved


def test_a_shared_judge_cache_fits_each_size_once_and_changes_no_result(monkeypatch):
    import seqae.phylo.treejudge as treejudge

    fits = []
    train = treejudge.train_tree_judge
    monkeypatch.setattr(treejudge, "train_tree_judge", lambda *a, **k: fits.append(1) or train(*a, **k))
    fams = [(f.codes, f.names) for f in (simulated_family(6, 120, 41), simulated_family(6, 120, 42))]
    plain = LatentTreeSettings(dim=4, init_steps=10, epochs=4, nni_rounds=2, judge_steps=5, n_reference=16)
    # With the adversary, one family a batch: two batches of one size.
    adversarial = LatentTreeSettings(**{**plain.__dict__, "adversarial_weight": 0.5, "batch_size": 1})
    # Each batch with a judge of its own (the fits the cache saves).
    alone = [fit_latent_trees(fams, plain, seed=3), [fit_latent_trees([f], adversarial, seed=3)[0] for f in fams]]
    assert len(fits) == 3
    fits.clear()
    cache = treejudge.JudgeCache()
    shared = [fit_latent_trees(fams, s, seed=3, judges=cache) for s in (plain, adversarial)]
    assert len(fits) == 1 and len(cache) == 1
    for a_run, s_run in zip(alone, shared):
        for a, s in zip(a_run, s_run):
            assert a.tree.write(format=1) == s.tree.write(format=1)
            assert a.decoded_tree.write(format=1) == s.decoded_tree.write(format=1)  # the adversary's steps
            assert a.log_likelihood == s.log_likelihood and a.trace == s.trace
            assert a.judge_score == s.judge_score and a.judge_auc == s.judge_auc
    # Another seed is another judge.
    fit_latent_trees(fams, plain, seed=4, judges=cache)
    assert len(cache) == 2
