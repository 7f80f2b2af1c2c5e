"""seqae.metrics.anomaly: AUROC, dinucleotide shuffles and foreign windows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from seqae.metrics import auroc, dinucleotide_counts, dinucleotide_shuffle, foreign_windows
from tests.metrics.conftest import codes_of, random_codes


def test_auroc_known_values_and_sklearn() -> None:
    assert auroc([0, 1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [0, 1, 2]) == 0.0
    assert auroc([1, 1, 1], [1, 1]) == 0.5
    assert auroc([0, 1], [0, 1]) == 0.5
    rng = np.random.default_rng(10)
    normal = np.round(rng.normal(size=300), 1)  # rounding makes ties
    anomalous = np.round(rng.normal(0.5, size=120), 1)
    expected = roc_auc_score(np.r_[np.zeros(300), np.ones(120)], np.r_[normal, anomalous])
    assert auroc(normal, anomalous) == pytest.approx(expected, abs=1e-12)


def test_dinucleotide_shuffle_preserves_counts() -> None:
    rng = np.random.default_rng(11)
    codes = random_codes(rng, 200, 300)
    codes[rng.random(codes.shape) < 0.02] = 4  # N kept as a symbol
    codes[0, :150] = 0  # long homopolymer
    shuffled = dinucleotide_shuffle(codes, rng)
    assert shuffled.shape == codes.shape and shuffled.dtype == np.uint8
    np.testing.assert_array_equal(dinucleotide_counts(shuffled), dinucleotide_counts(codes))
    np.testing.assert_array_equal(shuffled[:, [0, -1]], codes[:, [0, -1]])
    assert (shuffled != codes).any(axis=1).all()
    assert (shuffled != codes).mean() > 0.5
    # A sequence with a single arrangement comes back unchanged.
    only = codes_of("AAAAAAAC")
    np.testing.assert_array_equal(dinucleotide_shuffle(only, 0), only)


def test_dinucleotide_shuffle_is_uniform_on_a_short_sequence() -> None:
    seq = codes_of("ACAGACGAC")[0]
    target = dinucleotide_counts(seq[None])[0]
    valid = {
        p
        for p in set(itertools.permutations(seq.tolist()))
        if p[0] == seq[0] and p[-1] == seq[-1] and (dinucleotide_counts(np.array([p]))[0] == target).all()
    }
    draws = dinucleotide_shuffle(np.repeat(seq[None], 6000, axis=0), np.random.default_rng(12))
    uniq, counts = np.unique(draws, axis=0, return_counts=True)
    assert {tuple(u) for u in uniq.tolist()} == valid
    assert counts.min() > 0.8 * 6000 / len(valid)


def test_foreign_windows_gc() -> None:
    w = foreign_windows(200, 500, gc=0.7, rng=np.random.default_rng(13))
    assert w.shape == (200, 500) and w.dtype == np.uint8 and w.max() <= 3
    assert np.isin(w, [1, 2]).mean() == pytest.approx(0.7, abs=0.01)
