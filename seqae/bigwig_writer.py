"""The one bigWig writer: a header in the order entries will come, then intervals or runs of per-base values.

Every bigWig seqae writes goes through :class:`BigWigWriter`: the demo's
simulated coverage, reconstructed windows (``seqae.tracks.write_bigwig``), the
embedding's reconstructed tracks and anomaly scores. pyBigWig requires
entries in header order, then position, without overlaps; the writer checks
nothing more than pyBigWig does, so callers sort their entries.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyBigWig

from seqae.errors import SeqaeError
from seqae.fileio import ClosedOnExit


class BigWigWriter(ClosedOnExit):
    """An open bigWig being written.

    Args:
        path: the file to write (callers write to a temporary name and rename).
        header: ``(chromosome, size)`` pairs in the order entries will come.
        zoom_levels: zoom levels pyBigWig computes when closing (more: faster
            browsing of a large file, slower writing).

    Raises:
        SeqaeError: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], header: Sequence[tuple[str, int]], zoom_levels: int):
        self.names = [name for name, _ in header]
        self.bw = pyBigWig.open(str(path), "w")
        if self.bw is None:
            raise SeqaeError(f"{path}: cannot write a bigWig here")
        self.bw.addHeader([(name, int(size)) for name, size in header], maxZooms=zoom_levels)

    def add_intervals(self, chrom: str, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> None:
        """bedGraph entries of one chromosome: ``values[k]`` over ``[starts[k], ends[k])`` (sorted, disjoint)."""
        if len(starts):
            self.bw.addEntries([chrom] * len(starts), np.asarray(starts, dtype=np.int64),
                               ends=np.asarray(ends, dtype=np.int64), values=np.asarray(values, dtype=np.float64))  # fmt: skip

    def add_runs(self, chrom: np.ndarray, start: np.ndarray, length: np.ndarray, values: np.ndarray) -> None:
        """Runs of per-base values: run ``k`` is ``values[o_k : o_k + length[k]]`` from base ``start[k]`` of
        chromosome ``header[chrom[k]]`` (``o_k`` the lengths before it), one fixed-step entry each."""
        offsets = np.r_[0, np.cumsum(length)].tolist()
        names = self.names
        for k, (c, s) in enumerate(zip(chrom.tolist(), start.tolist(), strict=True)):
            self.bw.addEntries(names[c], s, values=values[offsets[k] : offsets[k + 1]], span=1, step=1)

    def close(self) -> None:
        """Write the zoom levels and the index, and close the file."""
        if self.bw is not None:
            self.bw.close()
            self.bw = None
