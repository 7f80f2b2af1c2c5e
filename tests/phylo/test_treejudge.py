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
