"""seqae.metrics.markov: Markov chains and their likelihood ratio."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.genome import encode
from seqae.metrics import auroc, dinucleotide_shuffle, fit_markov, markov_ratio_score
from tests.metrics.conftest import random_codes


def test_markov_fit_recovers_the_transition_matrix() -> None:
    rng = np.random.default_rng(14)
    transition = rng.dirichlet(np.ones(4), size=4)  # row: current base, column: next
    length = 400
    codes = np.empty((300, length), dtype=np.uint8)
    codes[:, 0] = rng.integers(0, 4, 300)
    for t in range(1, length):  # simulating the chain needs one step per position
        cum = np.cumsum(transition[codes[:, t - 1]], axis=1)
        codes[:, t] = (rng.random((300, 1)) > cum).sum(axis=1).clip(max=3)
    model = fit_markov(codes, 1)
    assert model.log_probs.shape == (4, 4)
    np.testing.assert_allclose(np.exp(model.log_probs), transition, atol=0.02)
    # N is skipped, not read as T: an all-N window has nothing to predict.
    assert fit_markov(codes, 2).log_likelihood(np.full((1, 50), 4, dtype=np.uint8))[0] == 0.0
    with pytest.raises(ValueError, match="order"):
        fit_markov(codes, 9)


def test_markov_ratio_tells_motif_windows_from_their_shuffles_but_not_background() -> None:
    rng = np.random.default_rng(15)
    motif = encode("TGACCGGAAGTC")
    peaks = random_codes(rng, 400, 300)
    for start in (20, 90, 160, 230):  # four copies per window: structure beyond dinucleotides
        peaks[:, start : start + motif.size] = motif
    background = random_codes(rng, 400, 300)
    train = np.concatenate([peaks[:200], background[:200]])
    high, low = fit_markov(train, 4), fit_markov(train, 1)
    test_peaks, test_background = peaks[200:], background[200:]
    shuffle = np.random.default_rng(16)

    def separation(codes: np.ndarray) -> float:
        real = markov_ratio_score(high, low, codes)
        return auroc(real, markov_ratio_score(high, low, dinucleotide_shuffle(codes, shuffle)))

    assert separation(test_peaks) > 0.95
    assert 0.35 < separation(test_background) < 0.65
    # Order 1 against order 1: nothing left to score.
    np.testing.assert_allclose(markov_ratio_score(low, low, test_peaks), 0.0)
