"""seqae.metrics._common: metrics read their inputs without changing them."""

from __future__ import annotations

import numpy as np

from seqae.metrics import dinucleotide_shuffle, kmer_counts, pca_baseline
from tests.metrics.conftest import codes_of


def test_metrics_have_no_side_effects_on_inputs() -> None:
    codes = codes_of("ACGTACGTNNACGT", "TTGTACGTNNACGA", "ACGAACGTNNACCC")
    before = codes.copy()
    kmer_counts(codes, 3)
    dinucleotide_shuffle(codes, 0)
    pca_baseline(codes, codes, 2)
    np.testing.assert_array_equal(codes, before)
