"""Known sites mapped onto windows: masks, accuracy inside and outside, code-label information."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqae.metrics.sites import accuracy_inside_outside, code_label_information, site_masks


def test_site_masks_on_hand_made_windows() -> None:
    # Windows of 10 bp: chr1 at 100 and 105 (overlapping), chr2 at 0.
    chrom = np.array(["chr1", "chr2", "chr1"])
    start = np.array([100, 0, 105])
    sites = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr2", "chr3"],
            "start": [102, 108, 9, 0],
            "end": [105, 112, 12, 5],
            "tf": ["A", "B", "A", "A"],
        }
    )
    m = site_masks(chrom, start, 10, sites)
    want = np.zeros((3, 10), bool)
    want[0, 2:5] = True  # site A at 102-105 in window 0
    want[0, 8:10] = True  # site B at 108-112 reaches into window 0's last two bases
    want[2, 3:7] = True  # ... and lies wholly inside window 2 (105-115) at offsets 3-7
    want[1, 9] = True  # chr2 site 9-12 covers window 1's last base
    np.testing.assert_array_equal(m.mask, want)
    # Only sites wholly inside a window are listed: A in window 0 (centre 3), B in window 2 (centre 5).
    listed = sorted(zip(m.window.tolist(), m.centre.tolist(), m.label.tolist(), strict=True))
    assert listed == [(0, 3, "A"), (2, 5, "B")]


def test_site_masks_with_no_shared_chromosome() -> None:
    m = site_masks(
        np.array(["chrX"]), np.array([0]), 5, pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [2], "tf": ["A"]})
    )
    assert not m.mask.any() and m.window.size == 0


def test_accuracy_inside_outside() -> None:
    target = np.array([[0, 1, 2, 3, 4, 0]], np.uint8)  # the N (4) is never counted
    predicted = np.array([[0, 0, 2, 3, 4, 1]], np.uint8)
    mask = np.array([[True, True, False, False, True, False]])
    out = accuracy_inside_outside(predicted, target, mask)
    assert out["sites"] == pytest.approx(0.5) and out["n_site_bases"] == 2
    assert out["background"] == pytest.approx(2 / 3) and out["n_background_bases"] == 3


def test_code_label_information_tells_informative_codes_from_random_ones() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(["A", "B", "C", "D"], size=400)
    informative = np.searchsorted(["A", "B", "C", "D"], labels)  # the code is the label
    out = code_label_information(informative, labels)
    assert out["mi_bits"] == pytest.approx(out["label_entropy_bits"], abs=1e-9)
    assert out["mi_permuted_bits"] < 0.1 and out["n_sites"] == 400
    noise = code_label_information(rng.integers(0, 4, size=400), labels)
    assert noise["mi_bits"] < 0.1 and abs(noise["mi_bits"] - noise["mi_permuted_bits"]) < 0.05
