"""seqae.metrics.baselines: the PCA baseline."""

from __future__ import annotations

import numpy as np

from seqae.metrics import one_hot, pca_baseline
from tests.metrics.conftest import random_codes


def test_pca_baseline_reconstructs_templates() -> None:
    rng = np.random.default_rng(7)
    templates = random_codes(rng, 4, 50)
    train = templates[rng.integers(0, 4, 40)]
    test = templates[rng.integers(0, 4, 12)].copy()
    test[0, 3] = 4  # an N in the truth is left out
    out = pca_baseline(train, test, n_components=4, seed=0)
    assert out["base_accuracy"] == 1.0
    assert out["train_embedding"].shape == (40, 4) and out["test_embedding"].shape == (12, 4)
    assert np.all(out["window_accuracy"] == 1.0)
    # The same result from a one-hot training matrix [N, 4*L] and a channel-major [N, 4, L] one.
    flat = one_hot(train).reshape(40, -1)
    assert pca_baseline(flat, test, 4)["base_accuracy"] == 1.0
    assert pca_baseline(one_hot(train).transpose(0, 2, 1), test, 4)["base_accuracy"] == 1.0
    # One component cannot hold four templates.
    assert pca_baseline(train, test, 1)["base_accuracy"] < 1.0
