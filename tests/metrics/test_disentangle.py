"""seqae.metrics.disentangle: MIG and DCI."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.metrics import dci, dci_from_importance, mig


def test_mig_copy_vs_random() -> None:
    rng = np.random.default_rng(8)
    factors = rng.integers(0, 5, size=(4000, 3))
    latent = factors + 0.01 * rng.normal(size=factors.shape)
    assert mig(latent, factors) > 0.95
    assert mig(rng.normal(size=(4000, 3)), factors) < 0.05
    # Two dimensions copying the same factor leave no gap for it.
    dup = np.column_stack([factors[:, 0], factors[:, 0]]).astype(float)
    assert mig(dup, factors[:, :1]) < 0.05


def test_dci_axis_aligned_vs_mixed() -> None:
    rng = np.random.default_rng(9)
    f_tr, f_te = rng.integers(0, 4, size=(600, 2)), rng.integers(0, 4, size=(300, 2))
    noise = lambda n: 0.05 * rng.normal(size=(n, 3))  # noqa: E731
    aligned_tr = np.column_stack([f_tr, rng.normal(size=600)]) + noise(600)
    aligned_te = np.column_stack([f_te, rng.normal(size=300)]) + noise(300)
    res = dci(aligned_tr, f_tr, aligned_te, f_te, n_estimators=20)
    assert res["disentanglement"] > 0.9 and res["completeness"] > 0.9
    assert res["informativeness"] > 0.95
    assert res["importance"].shape == (3, 2)
    res_lr = dci(aligned_tr, f_tr, aligned_te, f_te, method="logistic")
    assert res_lr["disentanglement"] > 0.8
    # Every dimension equally important for every factor: disentanglement 0, completeness 0.
    flat = dci_from_importance(np.ones((3, 2)))
    assert flat["disentanglement"] == pytest.approx(0.0) and flat["completeness"] == pytest.approx(0.0)
    perfect = dci_from_importance(np.array([[1.0, 0], [0, 2.0]]))
    assert perfect["disentanglement"] == pytest.approx(1.0) and perfect["completeness"] == pytest.approx(1.0)
