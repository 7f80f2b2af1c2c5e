"""seqae.phylo.treejudge: the judge of real against perturbed trees."""

from __future__ import annotations

import numpy as np
import torch


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
    # The network runs in float32 on float64 trees; the adversary's gradient still reaches the lengths.
    assert real.lengths.dtype == torch.float64 and judge.phi[0].weight.dtype == torch.float32
    lengths.grad = None
    torch.nn.functional.softplus(
        -judge(split_features(real.children[:2], real.root_children[:2], lengths))
    ).sum().backward()
    assert lengths.grad.dtype == torch.float64 and torch.isfinite(lengths.grad).all() and lengths.grad.abs().sum() > 0


def test_reference_schedules_are_the_ete3_schedules_and_keep_the_random_stream():
    """The simulated trees skip ete3 (unrooted_from_arrays); the schedules and the generator are as through ete3."""
    from seqae.phylo.discriminator import sample_reference_trees
    from seqae.phylo.ete import Tree
    from seqae.phylo.schedule import tree_batch, unrooted_tree
    from seqae.phylo.treejudge import reference_schedules

    user = [Tree("((t0:0.1,t1:0.2):0.05,(t2:0.3,(t3:0.1,t4:0.4):0.2):0.1,t5:0.3);"), Tree("(a:1,b:1,c:1);")]
    for n in (6, 12, 40):
        got_rng, want_rng = np.random.default_rng(n), np.random.default_rng(n)
        got = reference_schedules(n, 24, got_rng, user)
        trees = [a.to_ete() for a in sample_reference_trees(n, 24, want_rng)] + [t for t in user if len(t) == n]
        want = tree_batch([unrooted_tree(t, sorted(leaf.name for leaf in t.get_leaves())) for t in trees])
        assert got.children.shape[0] == (25 if n == 6 else 24)
        assert torch.equal(got.children, torch.as_tensor(want.children))
        assert torch.equal(got.root_children, torch.as_tensor(want.root_children))
        assert torch.equal(got.lengths, torch.as_tensor(want.lengths).clamp_min(1e-6))
        assert got_rng.bit_generator.state == want_rng.bit_generator.state
