"""seqae.phylo.njtorch: the batched, differentiable NJ decoder."""

from __future__ import annotations

import numpy as np
import torch

from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import jc69_distance, patristic_distances
from seqae.phylo.nj import neighbor_joining
from seqae.phylo.njtorch import decode_nj
from tests.phylo.conftest import decoded_tree, simulated_family


def test_decode_nj_matches_reference_nj_and_has_gradient():
    fams = [simulated_family(9, 300, seed) for seed in (1, 2)]
    dist = np.stack([jc69_distance(f.codes) for f in fams])
    d = torch.tensor(dist, requires_grad=True)
    dec = decode_nj(d)
    for k, f in enumerate(fams):
        ours = decoded_tree(dec.children, dec.root_children, dec.lengths, f.names, k)
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
    fam = simulated_family(12, 10, 3)
    dist, names = patristic_distances(fam.tree, fam.names)
    dec = decode_nj(torch.tensor(dist[None]))
    assert normalized_rf(decoded_tree(dec.children, dec.root_children, dec.lengths, names), fam.tree) == 0.0
