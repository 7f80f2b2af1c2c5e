"""seqae.embed_placement: which bases each window's values cover in the bigWigs, and the chromosome header."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqae.embed_placement import owned_intervals, place_windows
from seqae.errors import SeqaeError

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_owned_intervals_follow_the_nearest_centre():
    rng = np.random.default_rng(1)
    window_len = 10
    start = np.sort(rng.integers(0, 60, size=12))
    start[4] = start[5]  # two windows at the same place: the later one wins
    chrom = np.zeros(len(start), dtype=np.int64)
    chrom[8:] = 1  # a second chromosome
    lo, hi = owned_intervals(chrom, start, window_len)
    assert hi[4] == lo[4]
    centre = start + window_len // 2
    for c in (0, 1):
        rows = np.flatnonzero(chrom == c)
        for p in range(start[rows].min() - 2, start[rows].max() + window_len + 2):
            covering = [i for i in rows if start[i] <= p < start[i] + window_len]
            owner = [i for i in rows if lo[i] <= p < hi[i]]
            if not covering:
                assert owner == []
                continue
            distance = np.abs(p - centre[covering])
            # nearest centre; among equals the last one (larger start, later row)
            expected = max(i for i, d in zip(covering, distance, strict=True) if d == distance.min())
            assert owner == [expected], (p, covering)


def test_chromosome_names_and_sizes(tmp_path):
    labels = pd.DataFrame(
        {
            "species": ["human", "human", "mouse"],
            "chrom": ["chr1", "chr1", "chr1"],
            "start": [100, 150, 500],
            "end": [200, 250, 600],
        }
    )
    placement = place_windows(labels, np.arange(3), 100, flank=10)
    assert placement.header == [("human:chr1", 260), ("mouse:chr1", 610)]
    assert placement.genome_sorted
    sizes = tmp_path / "sizes.txt"
    sizes.write_text("human:chr1\t1000\nchr1\t900\n")
    assert place_windows(labels, np.arange(3), 100, chrom_sizes=sizes).header == [
        ("human:chr1", 1000),
        ("mouse:chr1", 900),
    ]
    sizes.write_text("chr1\t550\n")
    with pytest.raises(SeqaeError, match="'mouse:chr1' is 550 bp but a window ends at 600"):
        place_windows(labels, np.arange(3), 100, chrom_sizes=sizes)
    one = labels.assign(species="human", chrom=["chr1", "chr2", "chr2"])
    assert [name for name, _ in place_windows(one, np.arange(3), 100).header] == ["chr1", "chr2"]
    with pytest.raises(SeqaeError, match="no size for chromosome 'chr2'"):
        place_windows(one, np.arange(3), 100, chrom_sizes={"chr1": 5000})
    # Windows without a chromosome name have no place in a bigWig (pyBigWig failed on the header).
    unnamed = one.assign(chrom=["chr1", "", float("nan")])
    with pytest.raises(SeqaeError, match=r"w\.h5: 2 of the 3 windows have no chromosome name"):
        place_windows(unnamed, np.arange(3), 100, source="w.h5")
