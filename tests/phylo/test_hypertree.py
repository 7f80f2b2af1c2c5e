"""The tree latent: batched NJ decoder, ML NNI refinement, hyperbolic points trained by the likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import jc69_distance, patristic_distances
from seqae.phylo.gtr import GTRGamma
from seqae.phylo.hypertree import (
    LatentTreeSettings,
    fit_latent_trees,
    poincare_distance_matrix,
)
from seqae.phylo.likelihood import TreeTensors, log_likelihood
from seqae.phylo.mlfit import empirical_freqs
from seqae.phylo.mlsearch import (
    _apply_moves,
    _kids_table,
    _relabel,
    nni_gains,
    nni_search,
)
from seqae.phylo.nj import neighbor_joining
from seqae.phylo.njtorch import decode_nj
from seqae.phylo.patterns import pattern_batch, site_patterns
from seqae.phylo.schedule import UnrootedTree, tree_batch, unrooted_tree
from seqae.phylo.simulate import SubstitutionModel, simulate_family

MODEL = SubstitutionModel.hky85(kappa=2.0, alpha=0.5)


def _family(n: int, sites: int, seed: int, height: float = 0.5):
    return simulate_family(n, sites, np.random.default_rng(seed), model=MODEL, height=height)


def _ete(children, root_children, lengths, names, k=0):
    n = len(names)
    return UnrootedTree(n, children[k].numpy(), root_children[k].numpy(), lengths[k].detach().numpy(), names,
                        [""] * (n - 2)).to_ete()  # fmt: skip


def test_decode_nj_matches_reference_nj_and_has_gradient():
    fams = [_family(9, 300, seed) for seed in (1, 2)]
    dist = np.stack([jc69_distance(f.codes) for f in fams])
    d = torch.tensor(dist, requires_grad=True)
    dec = decode_nj(d)
    for k, f in enumerate(fams):
        ours = _ete(dec.children, dec.root_children, dec.lengths, f.names, k)
        ref = neighbor_joining(dist[k], f.names)
        assert normalized_rf(ours, ref) == 0.0
        ours_d, _ = patristic_distances(ours, f.names)
        ref_d, _ = patristic_distances(ref, f.names)
        np.testing.assert_allclose(ours_d, ref_d, atol=1e-9)  # no branch was negative here
    # Merge order is a post-order: every child precedes its parent.
    n = 9
    parents = n + np.arange(n - 3)
    assert (dec.children.numpy() < parents[None, :, None]).all()
    dec.lengths.sum().backward()
    assert torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0


def test_decode_nj_recovers_an_additive_metric():
    fam = _family(12, 10, 3)
    dist, names = patristic_distances(fam.tree, fam.names)
    dec = decode_nj(torch.tensor(dist[None]))
    assert normalized_rf(_ete(dec.children, dec.root_children, dec.lengths, names), fam.tree) == 0.0


def test_poincare_distances_are_a_metric_with_zero_diagonal():
    x = torch.tensor([[[0.0, 0.0], [0.5, 0.0], [0.0, 0.9]]], dtype=torch.float64)
    d = poincare_distance_matrix(x)
    assert torch.allclose(torch.diagonal(d[0]), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(
        d[0, 0, 1], 2 * torch.atanh(torch.tensor(0.5, dtype=torch.float64))
    )  # from the origin: 2 atanh r
    assert torch.allclose(d, d.transpose(1, 2))


def _setup(fams, trees):
    pats = [site_patterns(f.codes) for f in fams]
    tips, weights = pattern_batch(pats).tensors()
    batch = tree_batch([unrooted_tree(t, f.names) for t, f in zip(trees, fams)])
    model = GTRGamma(len(fams), 4, freqs=empirical_freqs(pats))
    lengths = torch.as_tensor(np.where(batch.lengths > 0, batch.lengths, 0.05))
    tt = TreeTensors.of(batch)
    return tt, tips, weights, model, lengths


def test_nni_gain_equals_the_likelihood_of_the_moved_tree():
    fam = _family(7, 400, 5, height=0.6)
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
    fam = _family(10, 50, 6)
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
    before = _ete(tt.children, tt.root_children, lengths, fam.names)
    after = _ete(table[:, : n - 3, :2], table[:, n - 3], ell, fam.names)
    assert normalized_rf(before, after) == 0.0
    np.testing.assert_allclose(patristic_distances(before, fam.names)[0], patristic_distances(after, fam.names)[0])


def test_nni_search_climbs_back_to_the_true_tree():
    fams = [_family(6, 800, 7, height=0.5)]
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
        tree = _ete(res.children, res.root_children, res.lengths, f.names, k)
        assert normalized_rf(tree, f.tree) == 0.0


SMALL = LatentTreeSettings(dim=4, init_steps=40, epochs=5, nni_rounds=2, judge=False)


def test_fit_latent_trees_batches_by_size_and_refines():
    fams = [_family(7, 150, 11), _family(5, 150, 12), _family(7, 150, 13)]
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


def test_fit_latent_trees_does_not_depend_on_row_order():
    fam = _family(7, 200, 21)
    perm = np.random.default_rng(0).permutation(7)
    a = fit_latent_trees([(fam.codes, fam.names)], SMALL)[0]
    b = fit_latent_trees([(fam.codes[perm], [fam.names[i] for i in perm])], SMALL)[0]
    assert normalized_rf(a.tree, b.tree) == 0.0
    assert a.log_likelihood == pytest.approx(b.log_likelihood, abs=1e-6)


def test_latent_settings_reject_bad_values():
    with pytest.raises(ValueError, match="refine"):
        LatentTreeSettings(refine="spr")
    with pytest.raises(ValueError, match="unknown key"):
        LatentTreeSettings.from_mapping({"dims": 3})
    with pytest.raises(ValueError, match="at least 4"):
        fit_latent_trees([(np.zeros((3, 10), dtype=np.uint8), ["a", "b", "c"])])


TINY_STAGE = {
    "latent_tree": {"dim": 4, "init_steps": 40, "epochs": 5, "nni_rounds": 2, "n_reference": 16, "judge_steps": 20},
    "render": False,
    "baselines": ["nj_p"],
}


def test_seqae_trees_batch_fits_families_together_with_and_without_the_adversary(tmp_path):
    import json

    import pandas as pd

    from seqae.cli import main
    from seqae.phylo.io import read_tree, write_family

    lines = ["name\tfasta\treference"]
    for k, n in enumerate((7, 7, 5)):
        fam = _family(n, 150, 30 + k)
        write_family(fam.sequences(), tmp_path / f"f{k}.fa")
        (tmp_path / f"f{k}.nwk").write_text(fam.newick())
        lines.append(f"f{k}\t{tmp_path / f'f{k}.fa'}\t{tmp_path / f'f{k}.nwk'}")
    (tmp_path / "batch.tsv").write_text("\n".join(lines) + "\n")
    cfg = json.dumps({"genomes": [{"species": "x", "fasta": "x.fa", "tfs": [{"name": "T", "peaks": "p.bed"}]}],
                      "trees": TINY_STAGE})  # fmt: skip
    out = tmp_path / "out"
    assert (
        main(["-q", "trees", "--config-json", cfg, "--batch", str(tmp_path / "batch.tsv"), "--outdir", str(out)]) == 0
    )
    for k in range(3):
        row = pd.read_csv(out / f"f{k}" / f"f{k}.tsv", sep="\t").iloc[0]
        assert row["geometry"] == "poincare_nj" and row["adversarial_weight_adv"] == 0.3
        assert row["nrf_latent"] == row["nrf_latent_noadv"] and 0 <= row["nrf_latent_adv"] <= 1
        assert np.isfinite([row["loglik_latent"], row["loglik_latent_adv"], row["loglik_nj_p"]]).all()
        assert 0 <= row["disc_auc_before"] <= 1 and 0 <= row["disc_auc_after"] <= 1 and 0 <= row["disc_score"] <= 1
        tree = read_tree(out / f"f{k}" / f"f{k}.nwk")
        inner = {node.name for node in tree.traverse() if not node.is_leaf()}
        text = (out / f"f{k}" / f"f{k}.ancestral.fa").read_text()
        assert {line[1:].strip() for line in text.splitlines() if line.startswith(">")} == inner


def test_run_families_rejects_a_family_listed_twice(tmp_path):
    from seqae.errors import ConfigError
    from seqae.phylo.io import write_family
    from seqae.phylo.stage import run_families

    fam = _family(5, 50, 40)
    write_family(fam.sequences(), tmp_path / "a.fa")
    spec = {"fasta": tmp_path / "a.fa", "outdir": tmp_path / "out"}
    with pytest.raises(ConfigError, match="listed twice"):
        run_families([spec, spec], TINY_STAGE)
    assert not (tmp_path / "out").exists()


def test_tree_judge_reads_splits_and_separates_real_from_perturbed_trees():
    from seqae.phylo.treejudge import (
        judge_auc,
        perturbed,
        reference_schedules,
        split_features,
        train_tree_judge,
    )

    rng = np.random.default_rng(0)
    real, held = reference_schedules(10, 96, rng), reference_schedules(10, 96, rng)
    judge = train_tree_judge(real, perturbed(real, rng), steps=150)
    assert judge_auc(judge, held, perturbed(held, rng)) > 0.8
    # Features: differentiable in the lengths; balance of a pendant split is 1/n; scale-free.
    lengths = real.lengths[:2].clone().requires_grad_(True)
    feats = split_features(real.children[:2], real.root_children[:2], lengths)
    assert feats.shape == (2, 17, 4)
    assert torch.allclose(feats[:, :10, 2], torch.full((2, 10), 0.1, dtype=feats.dtype))
    feats[..., 0].sum().backward()
    assert torch.isfinite(lengths.grad).all()
    scaled = split_features(real.children[:2], real.root_children[:2], 3.0 * real.lengths[:2])
    assert torch.allclose(scaled, feats.detach())


def test_perturbed_search_never_loses_likelihood():
    from seqae.phylo.mlsearch import perturbed_search

    fams = [_family(8, 300, seed) for seed in (50, 51)]
    tt, tips, weights, model, lengths = _setup(fams, [f.tree for f in fams])
    first = nni_search(tt.children, tt.root_children, lengths, tips, weights, model, max_rounds=3)
    best = perturbed_search(first, tips, weights, model, rounds=2, max_rounds=3)
    assert (best.log_likelihood >= first.log_likelihood - 1e-9).all()
    for k, f in enumerate(fams):
        tree = _ete(best.children, best.root_children, best.lengths, f.names, k)
        assert sorted(tree.get_leaf_names()) == sorted(f.names)
    # The kept trees' likelihoods are their own.
    moved = TreeTensors(best.children, best.root_children, tt.edge_mask)
    assert torch.allclose(log_likelihood(moved, tips, weights, model, best.lengths), best.log_likelihood)
