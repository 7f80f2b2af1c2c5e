"""seqae.phylo.patterns: site patterns of an alignment."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.phylo.patterns import site_patterns

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_site_patterns_and_bad_columns() -> None:
    codes = np.array([[0, 1, 0, 4, 0], [0, 2, 0, 1, 0], [3, 2, 3, 1, 3]], dtype=np.uint8)
    pats = site_patterns(codes)
    assert pats.weights.sum() == 5 and pats.codes.shape == (3, 3)
    assert (pats.codes[:, pats.site_pattern] == codes).all()
    codes[:, 3] = 4
    with pytest.raises(ValueError, match="fam.fa: alignment column 4 has only gaps or N"):
        site_patterns(codes, "fam.fa")
    with pytest.raises(ValueError, match="codes must be 0..14"):
        site_patterns(np.full((3, 2), 15, dtype=np.uint8))
