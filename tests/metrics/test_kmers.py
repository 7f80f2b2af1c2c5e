"""seqae.metrics.kmers: k-mer counts, frequencies and spectrum distances on hand-made cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from seqae.metrics import (
    canonical_kmer_indices,
    kmer_baseline_features,
    kmer_counts,
    kmer_frequencies,
    kmer_names,
    kmer_spectrum_distance,
)
from tests.metrics.conftest import codes_of, random_codes

# ---------------------------------------------------------------- k-mers


def test_kmer_counts_hand_written() -> None:
    counts = kmer_counts(codes_of("ACGTACGT"), 2)
    assert counts.shape == (1, 16) and counts.dtype == np.float32
    names = kmer_names(2)
    got = {names[i]: int(c) for i, c in enumerate(counts[0]) if c}
    assert got == {"AC": 2, "CG": 2, "GT": 2, "TA": 1}
    assert names[:5] == ["AA", "AC", "AG", "AT", "CA"]


def test_kmer_counts_skip_n_and_rows_independent() -> None:
    counts = kmer_counts(codes_of("ACNGT", "AAAAA"), 2)
    names = kmer_names(2)
    row0 = {names[i]: int(c) for i, c in enumerate(counts[0]) if c}
    assert row0 == {"AC": 1, "GT": 1}  # CN and NG skipped
    assert counts[1, names.index("AA")] == 4 and counts[1].sum() == 4
    assert kmer_counts(codes_of("NNNN"), 3).sum() == 0
    assert kmer_counts(codes_of("AC"), 3).shape == (1, 64)  # shorter than k: no k-mer
    k1 = kmer_counts(codes_of("ACGTN"), 1)
    np.testing.assert_array_equal(k1, [[1, 1, 1, 1]])


def test_kmer_counts_match_naive_count() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 5, size=(7, 60)).astype(np.uint8)
    for k in (1, 3, 4):
        expected = np.zeros((7, 4**k))
        for i, j in itertools.product(range(7), range(60 - k + 1)):
            kmer = codes[i, j : j + k]
            if (kmer < 4).all():
                expected[i, int(np.dot(kmer, 4 ** np.arange(k - 1, -1, -1)))] += 1
        np.testing.assert_array_equal(kmer_counts(codes, k), expected)


def test_kmer_canonical_merge() -> None:
    # ACGTACGT: AC+GT (reverse complements) = 4, CG (palindrome) = 2, TA (palindrome) = 1.
    canon = kmer_counts(codes_of("ACGTACGT"), 2, canonical=True)
    names = kmer_names(2, canonical=True)
    assert len(names) == (16 + 4) // 2 == canonical_kmer_indices(2).size
    got = {names[i]: int(c) for i, c in enumerate(canon[0]) if c}
    assert got == {"AC": 4, "CG": 2, "TA": 1}
    # A sequence and its reverse complement have the same canonical counts.
    fwd, rc = codes_of("AACGTTTGCAGG", "CCTGCAAACGTT")
    np.testing.assert_array_equal(kmer_counts(fwd, 3, canonical=True), kmer_counts(rc, 3, canonical=True))
    assert kmer_counts(fwd, 3, canonical=True).shape == (1, 32)


def test_kmer_frequencies_normalised() -> None:
    freq = kmer_frequencies(codes_of("ACGTACGT", "NNNNNNNN"), 2)
    assert freq[0].sum() == pytest.approx(1.0)
    assert freq[1].sum() == 0.0  # no N-free k-mer: zeros, not NaN
    base = kmer_baseline_features(codes_of("ACGTACGT"), k=(1, 2))
    assert base.shape == (1, 4 + 16) and base.sum() == pytest.approx(2.0)


def test_kmer_spectrum_distance() -> None:
    rng = np.random.default_rng(2)
    a = random_codes(rng, 50, 200, gc=0.4)
    assert kmer_spectrum_distance(a, a[::-1], 3) == pytest.approx(0.0, abs=1e-7)
    b = random_codes(rng, 50, 200, gc=0.7)
    a2 = random_codes(rng, 50, 200, gc=0.4)
    d_diff = kmer_spectrum_distance(a, b, 3)
    d_same = kmer_spectrum_distance(a, a2, 3)
    assert d_diff > 0.05 and d_diff > 5 * d_same
    assert kmer_spectrum_distance(codes_of("AAAA"), codes_of("CCCC"), 2) == pytest.approx(1.0)
