"""The direct bigWig block reader against pyBigWig, for every section type, and on a corrupt block."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pytest

from seqae.bigwig_blocks import BigWigBlocks
from seqae.errors import InputError
from seqae.tracks import BigWigTrack


def _write(path, kind: str, rng: np.random.Generator) -> None:
    """Two chromosomes of signal as fixedStep bins, variableStep items or bedGraph intervals, with gaps."""
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chrA", 60_000), ("chrB", 30_000)], maxZooms=2)
    for chrom, size in (("chrA", 60_000), ("chrB", 30_000)):
        if kind == "fixed":
            bw.addEntries(chrom, 100, values=rng.random(2_000).tolist(), span=10, step=10)
            bw.addEntries(chrom, 25_000, values=rng.random(400).tolist(), span=5, step=20)
        elif kind == "variable":
            starts = np.sort(rng.choice(np.arange(0, size - 20, 20), size=800, replace=False))
            bw.addEntries(chrom, starts.tolist(), values=rng.random(800).tolist(), span=7)
        else:
            edges = np.sort(rng.choice(size, size=1_200, replace=False))
            starts, ends = edges[0::2], edges[1::2]
            bw.addEntries(
                [chrom] * len(starts), starts.tolist(), ends=ends.tolist(), values=rng.random(len(starts)).tolist()
            )
    bw.close()


@pytest.mark.parametrize("kind", ["fixed", "variable", "bedgraph"])
def test_values_equal_pybigwig(tmp_path, kind):
    rng = np.random.default_rng(len(kind))
    path = tmp_path / f"{kind}.bw"
    _write(path, kind, rng)
    blocks = BigWigBlocks(path)
    bw = pyBigWig.open(str(path))
    queries = [(0, 60_000), (0, 1), (95, 105), (20_990, 25_030)] + [
        (int(s), int(s) + int(n)) for s, n in zip(rng.integers(0, 29_000, 50), rng.integers(1, 3_000, 50), strict=True)
    ]
    for chrom, size in bw.chroms().items():
        for lo, hi in queries:
            hi = min(hi, size)
            want = bw.values(chrom, lo, hi, numpy=True).astype(np.float32)
            got = blocks.values(blocks.chrom_ids[chrom], lo, hi)
            np.testing.assert_array_equal(got, want)
    assert blocks.blocks_read > 0 and blocks.block_bytes > 0
    blocks.close()


@pytest.mark.parametrize("kind", ["fixed", "binned", "variable", "bedgraph"])
def test_many_spans_at_once_equal_pybigwig(tmp_path, kind):
    """One call over hundreds of sorted, disjoint spans paints what pyBigWig reads span by span.

    ``binned`` is one fixedStep run per chromosome (coverage in 10 bp bins): its
    blocks keep their arithmetic form, where the other kinds go through every
    item's position.
    """
    rng = np.random.default_rng(7 + len(kind))
    path = tmp_path / f"{kind}.bw"
    if kind == "binned":
        bw = pyBigWig.open(str(path), "w")
        bw.addHeader([("chrA", 60_000), ("chrB", 30_000)], maxZooms=0)
        bw.addEntries("chrA", 30, values=rng.random(5_000).tolist(), span=10, step=10)
        bw.addEntries("chrB", 0, values=rng.random(2_000).tolist(), span=7, step=10)
        bw.close()
    else:
        _write(path, kind, rng)
    blocks = BigWigBlocks(path)
    bw = pyBigWig.open(str(path))
    for chrom, size in bw.chroms().items():
        cuts = np.unique(rng.integers(0, size, 600))
        starts, ends = cuts[0::2], cuts[1::2]
        n = min(len(starts), len(ends))
        starts, ends = starts[:n], ends[:n]
        starts[0] = 0  # a span from the chromosome's start, before any item
        got = blocks.spans_values(blocks.chrom_ids[chrom], starts, ends)
        want = np.concatenate([bw.values(chrom, int(a), int(b), numpy=True) for a, b in zip(starts, ends, strict=True)])
        np.testing.assert_array_equal(got, want.astype(np.float32))
    blocks.close()


def _first_block(path):
    """A bigWig written at ``path``, its bytes and the offset of its first data block."""
    _write(path, "fixed", np.random.default_rng(0))
    blocks = BigWigBlocks(path)
    offset = int(blocks._leaves["offset"][0])
    blocks.close()
    return bytearray(path.read_bytes()), offset


def test_corrupt_block_is_one_clear_line(tmp_path):
    path = tmp_path / "broken.bw"
    data, offset = _first_block(path)
    data[offset : offset + 16] = b"\xff" * 16  # the zlib header and the first bytes of the block
    path.write_bytes(bytes(data))
    track = BigWigTrack(path, "T", ["chrA", "chrB"])
    with pytest.raises(InputError, match=r"broken\.bw: corrupt data block at byte \d+"):
        track.values("chrA", 0, 1_000)
    track.close()


def test_an_index_pointing_past_the_file_is_one_clear_line(tmp_path):
    """A corrupt R-tree leaf gave a ValueError or OverflowError traceback when its block was read."""
    import struct

    path = tmp_path / "broken.bw"
    data, offset = _first_block(path)
    at = data.index(struct.pack("<Q", offset))  # the leaf that points at the first block
    data[at : at + 8] = struct.pack("<Q", 2**62)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"broken\.bw: truncated bigWig header, .*data blocks past the file's end"):
        BigWigTrack(path, "T", ["chrA", "chrB"])
