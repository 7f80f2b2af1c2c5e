"""seqae.metrics.probes: linear probes, the probe matrix and recoverability."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.metrics import NOT_RECOVERABLE, linear_probe, probe_matrix, recoverability_flags


def _gaussian_classes(rng: np.random.Generator, n: int, n_classes: int = 3, sep: float = 10.0):
    y = rng.integers(0, n_classes, n)
    x = rng.normal(size=(n, 4))
    x[:, 0] += sep * y
    return x, y


def test_linear_probe_separable_and_random() -> None:
    rng = np.random.default_rng(3)
    x_tr, y_tr = _gaussian_classes(rng, 300)
    x_te, y_te = _gaussian_classes(rng, 200)
    names = np.array(["chr1", "chr2", "chrX"])
    res = linear_probe(x_tr, names[y_tr], x_te, names[y_te])  # string labels
    assert res.accuracy > 0.98 and res.balanced_accuracy > 0.98
    assert res.n_classes == 3 and res.n_test == 200

    # Random labels: accuracy near chance; chance = test rate of the majority training class.
    y_tr_r = rng.choice(["a", "b"], size=300, p=[0.7, 0.3])
    y_te_r = rng.choice(["a", "b"], size=200, p=[0.7, 0.3])
    res = linear_probe(x_tr, y_tr_r, x_te, y_te_r)
    assert res.majority_class == "a"
    assert res.chance == pytest.approx(np.mean(y_te_r == "a"))
    assert abs(res.accuracy - res.chance) < 0.1


def test_linear_probe_edge_cases() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 3))
    # Single training class: answers that class everywhere.
    res = linear_probe(x, np.zeros(20, int), x[:10], np.array([0] * 6 + [1] * 4))
    assert res.n_classes == 1 and res.accuracy == pytest.approx(0.6) == res.chance
    assert res.balanced_accuracy == pytest.approx(0.5)
    # A class never seen in training counts as an error.
    x_tr, y_tr = _gaussian_classes(rng, 100, n_classes=2)
    x_te, _ = _gaussian_classes(rng, 10, n_classes=2)
    res = linear_probe(x_tr, y_tr, x_te, np.full(10, 7))
    assert res.accuracy == 0.0 and res.chance == 0.0
    with pytest.raises(ValueError):
        linear_probe(x, np.zeros(19), x, np.zeros(20))


def test_probe_matrix_and_recoverability_flags() -> None:
    rng = np.random.default_rng(5)
    n_tr, n_te = 300, 200
    x_tr, y_tr = _gaussian_classes(rng, n_tr)
    x_te, y_te = _gaussian_classes(rng, n_te)
    noise_tr, noise_te = rng.normal(size=(n_tr, 4)), rng.normal(size=(n_te, 4))
    features = {"kmer": (x_tr, x_te), "block": (noise_tr, noise_te)}
    shuffled_tr, shuffled_te = rng.permutation(y_tr), rng.permutation(y_te)
    labels = {"chrom": (y_tr, y_te), "shuffled": (shuffled_tr, shuffled_te)}
    acc, long, chance = probe_matrix(features, labels)
    assert list(acc.index) == ["kmer", "block"] and list(acc.columns) == ["chrom", "shuffled"]
    assert acc.loc["kmer", "chrom"] > 0.98
    assert len(long) == 4 and {"accuracy", "chance", "balanced_accuracy"} <= set(long.columns)
    assert chance["chrom"] == pytest.approx(long.query("label == 'chrom'")["chance"].iloc[0])
    flags = recoverability_flags(acc, "kmer", chance, margin=0.05)
    assert flags.loc["chrom", "recoverable"] and flags.loc["chrom", "flag"] == ""
    assert not flags.loc["shuffled", "recoverable"]
    assert flags.loc["shuffled", "flag"] == NOT_RECOVERABLE
    # A scalar chance applies to every label.
    assert recoverability_flags(acc, "kmer", 1.0)["recoverable"].sum() == 0


def test_probe_matrix_drops_missing_labels() -> None:
    rng = np.random.default_rng(6)
    x_tr, y_tr = _gaussian_classes(rng, 100, n_classes=2)
    x_te, y_te = _gaussian_classes(rng, 50, n_classes=2)
    y_tr_o = np.array([f"g{v}" for v in y_tr], dtype=object)
    y_tr_o[:10] = None
    y_te_o = np.array([f"g{v}" for v in y_te], dtype=object)
    y_te_o[:5] = np.nan
    _, long, _ = probe_matrix({"x": (x_tr, x_te)}, {"gene": (y_tr_o, y_te_o)})
    assert long.loc[0, "n_train"] == 90 and long.loc[0, "n_test"] == 45
    assert long.loc[0, "accuracy"] > 0.95
