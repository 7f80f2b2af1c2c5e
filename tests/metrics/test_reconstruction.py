"""seqae.metrics.reconstruction: accuracy, composition entropy, track correlation and perplexity."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.metrics import composition_entropy, dinucleotide_shuffle, perplexity, sequence_accuracy, track_pearson
from tests.metrics.conftest import codes_of


def test_sequence_accuracy_excludes_n() -> None:
    true = codes_of("ACGTN", "AAAAN")
    pred = codes_of("ACGAA", "AAAAC")
    assert sequence_accuracy(pred, true) == pytest.approx(7 / 8)
    assert np.isnan(sequence_accuracy(codes_of("A"), codes_of("N")))


def test_composition_entropy_hand_made() -> None:
    out = composition_entropy(codes_of("AAAA", "ACGT", "AACC", "ACNN", "NNNN"))
    np.testing.assert_allclose(out[:4], [0.0, np.log(4), np.log(2), np.log(2)])  # nats; N left out
    assert np.isnan(out[4])
    # A shuffle keeps the composition, so it keeps the entropy.
    window = codes_of("ACGTTTAGGCA" * 9)
    shuffled = dinucleotide_shuffle(window, 3)
    assert not np.array_equal(shuffled, window)
    assert composition_entropy(shuffled)[0] == pytest.approx(composition_entropy(window)[0])


def test_track_pearson_hand_made() -> None:
    x = np.arange(10, dtype=float)
    true = np.stack([np.stack([x, x]), np.stack([x, np.full(10, 3.0)])])  # [N=2, T=2, L=10]
    pred = np.stack([np.stack([2 * x + 1, -x]), np.stack([x, x])])
    out = track_pearson(pred, true)
    np.testing.assert_allclose(out["mean_window_r"], [1.0, -1.0])  # constant window 2 of track 1 left out
    np.testing.assert_array_equal(out["n_windows"], [2, 1])
    assert out["pooled_r"][0] == pytest.approx(np.corrcoef(pred[:, 0].ravel(), true[:, 0].ravel())[0, 1])
    const = track_pearson(np.ones((3, 1, 5)), np.ones((3, 1, 5)))
    assert np.isnan(const["mean_window_r"][0]) and np.isnan(const["pooled_r"][0])
    assert const["n_windows"][0] == 0
    assert track_pearson(x[None], x[None])["pooled_r"].shape == (1,)


def test_perplexity() -> None:
    assert perplexity(np.arange(16).repeat(5), 16) == pytest.approx(16.0)
    assert perplexity(np.full((4, 7), 3), 16) == pytest.approx(1.0)
    assert perplexity(np.array([0, 0, 1, 1]), 512) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        perplexity(np.array([16]), 16)
