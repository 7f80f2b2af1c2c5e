"""seqae.background: GC-matched background windows."""

from __future__ import annotations

import numpy as np

from seqae.background import gc_matched_sample


def test_gc_matched_sample_follows_target():
    rng = np.random.default_rng(0)
    target = rng.normal(0.6, 0.05, 2000).clip(0, 1)
    cands = rng.uniform(0.2, 0.8, 50000)
    idx = gc_matched_sample(target, cands, 1000, 20, rng)
    assert len(idx) == 1000 and len(np.unique(idx)) == 1000
    assert abs(cands[idx].mean() - target.mean()) < 0.01
