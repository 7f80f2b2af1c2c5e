"""Per-base signal tracks: reading bigWig files span by span, writing bigWig.

Reading is organised around *clusters* of nearby windows
(:mod:`seqae.spans`): one ``pyBigWig.values`` call covers a whole cluster's
span and the windows are then cut out of it with one fancy-indexing step, so
dense peak sets cost a few large reads per chromosome instead of one read per
window, and sparse ones read little more than the windows themselves.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyBigWig

from seqae.bigwig_blocks import BigWigBlocks, UnsupportedBigWig
from seqae.bigwig_writer import BigWigWriter
from seqae.chrom_names import ChromAliases
from seqae.errors import InputError
from seqae.fileio import atomic_output, require_file
from seqae.spans import MAX_SPAN, ReadStats, read_by_spans

TRANSFORMS = ("none", "log1p")

#: Gap (bp) between two windows worth reading rather than starting a new
#: span; the read bound of :func:`seqae.spans.cluster_windows` (1.5x the bases
#: the windows cover) applies on top. Measured with
#: :meth:`seqae.bigwig_blocks.BigWigBlocks.spans_values` plus the log1p/float16
#: transform on a 248 Mb chromosome of 10 bp bins written by pyBigWig (blocks
#: of about 8,190 bins), blocks already inflated, in the OS cache, 2 CPU cores
#: shared with a training run, best of 15 runs, three times: one more span of
#: 200 costs 0.25-0.9 µs, one more base 7.5-8.9 ns (painting, log, cast), so a
#: gap pays for itself below 30-100 bp. (Through ``pyBigWig.values`` a call
#: cost about 250 µs whatever its span, since libBigWig walks the index from
#: disk each time: 20 kb gaps were worth reading then.)
BIGWIG_MAX_GAP = 100


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to /dev/null for the duration.

    C libraries such as libBigWig report a bad file on the process's stderr
    before returning an error; seqae reports it in one line of its own.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BigWigTrack:
    """One bigWig file, with its chromosome names mapped onto the FASTA's.

    Args:
        path: the bigWig file.
        name: the track's name (e.g. the TF).
        reference_chroms: FASTA chromosome names; bigWig names are matched to
            them by ``aliases`` (:class:`seqae.chrom_names.ChromAliases`, ``auto`` by default).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str,
        reference_chroms: Sequence[str],
        aliases: ChromAliases | None = None,
    ):
        self.path = require_file(path, "bigWig file")
        self.name = name
        try:
            with _quiet_native_stderr():  # libBigWig prints '[bwOpen] ...' lines of its own before failing
                handle = pyBigWig.open(str(self.path))
        except RuntimeError:
            handle = None
        if handle is None or not handle.isBigWig():
            raise InputError(self.path, "not a bigWig file, or a truncated one (pyBigWig could not open it)")
        self._bw = handle
        own = handle.chroms()
        to_reference = (aliases or ChromAliases(reference_chroms)).map_source(self.path, own)
        self.chrom_names = {ref: mine for mine, ref in to_reference.items() if mine != ref}
        self._own_name = {ref: mine for mine, ref in to_reference.items()}
        self._own_size = {ref: int(own[mine]) for mine, ref in to_reference.items()}
        try:  # seqae's own block reader: same values, no index walk per call
            self._blocks: BigWigBlocks | None = BigWigBlocks(self.path)
        except UnsupportedBigWig:  # read through libBigWig instead: slower per call, same values
            self._blocks = None

    def total_summary(self) -> tuple[int, float, float]:
        """``(bases covered, smallest value, largest value)`` of the whole file, as its header records them."""
        if self._blocks is not None and self._blocks.total_summary is not None:
            return self._blocks.total_summary
        header = self._bw.header()  # libBigWig's: the values rounded to integers
        return int(header["nBasesCovered"]), float(header["minVal"]), float(header["maxVal"])

    def has_chrom(self, chrom: str) -> bool:
        """Whether the bigWig holds the FASTA chromosome ``chrom`` (under any spelling)."""
        return chrom in self._own_name

    def chrom_size(self, chrom: str) -> int:
        """The length (bp) the bigWig's header gives the FASTA chromosome ``chrom`` (it must hold it)."""
        return self._own_size[chrom]

    def own_chroms(self) -> list[str]:
        """The bigWig's own chromosome names, in its header's order."""
        return list(self._bw.chroms())

    def values(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Signal over ``[start, end)`` of FASTA chromosome ``chrom``, ``float32 [end - start]``.

        Positions without data (NaN) and positions past the bigWig's own
        chromosome end read as 0.

        Raises:
            InputError: the bigWig has no such chromosome.
        """
        return self.spans_values(chrom, np.array([start]), np.array([end]))

    def spans_values(
        self,
        chrom: str,
        starts: np.ndarray,
        ends: np.ndarray,
        transform: str = "none",
        dtype: np.dtype | type = np.float32,
    ) -> np.ndarray:
        """Signal of sorted, disjoint spans of ``chrom``, concatenated, after ``transform`` (see :func:`transform_signal`).

        ``dtype [sum(ends - starts)]``; positions without data read as 0, as
        in :meth:`values`. Through the block reader the transform runs once
        per bigWig item (a bin), not once per base.
        """
        if chrom not in self._own_name:
            raise InputError(self.path, f"bigWig has no chromosome {chrom!r} (nor chr-prefixed/unprefixed spelling)")
        own, size = self._own_name[chrom], self._own_size[chrom]
        if self._blocks is not None:

            def prepare(vals: np.ndarray) -> np.ndarray:
                vals = vals.copy()
                np.copyto(vals, 0.0, where=~np.isfinite(vals))
                return transform_signal(vals, transform, dtype)

            empty = float(prepare(np.zeros(1, dtype=np.float32))[0])  # what a base without data reads as
            return self._blocks.spans_values(self._blocks.chrom_ids[own], starts, ends, empty, prepare, dtype)
        pieces = []
        for a, b in zip(np.asarray(starts), np.asarray(ends), strict=True):
            got = self._bw.values(own, int(a), int(min(b, size)), numpy=True) if min(b, size) > a else []
            pieces += [np.asarray(got, dtype=np.float32), np.zeros(int(b - a) - len(got), dtype=np.float32)]
        vals = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        np.copyto(vals, 0.0, where=~np.isfinite(vals))
        return transform_signal(vals, transform, dtype)

    def file_reads(self) -> dict[str, int]:
        """Data blocks inflated so far and their compressed bytes read from the file (empty through libBigWig)."""
        if self._blocks is None:
            return {}
        return {"blocks_inflated": self._blocks.blocks_read, "block_bytes_read": self._blocks.block_bytes}

    def close(self) -> None:
        """Close the bigWig."""
        self._bw.close()
        if self._blocks is not None:
            self._blocks.close()


def read_windows(
    track: BigWigTrack,
    chrom: str,
    starts: np.ndarray,
    length: int,
    transform: str = "none",
    dtype: np.dtype | type = np.float32,
    max_gap: int | None = None,
    max_span: int = MAX_SPAN,
    out: np.ndarray | None = None,
    stats: ReadStats | None = None,
) -> np.ndarray:
    """Signal of equal-length windows on one chromosome, ``dtype [n, length]``.

    ``out`` (``[n, length]``, may be a strided view such as ``tracks[:, t]``)
    receives the result directly; its dtype then overrides ``dtype``.

    ``starts`` must be sorted. Nearby windows share a span (see
    :func:`seqae.spans.cluster_windows`; ``max_gap`` defaults to
    :data:`BIGWIG_MAX_GAP`), so the signal read stays within 1.5 times the
    bases the windows cover; the spans are read in one call of
    :meth:`BigWigTrack.spans_values`, which applies the transform and the
    cast to ``dtype`` once per bigWig item, before overlapping windows copy
    the signal. ``stats`` counts spans, bases read and bases needed.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if out is None:
        out = np.empty((len(starts), length), dtype=dtype)
    dtype = out.dtype

    def spans(span_starts: np.ndarray, span_ends: np.ndarray) -> np.ndarray:
        return track.spans_values(chrom, span_starts, span_ends, transform, dtype)

    gap = BIGWIG_MAX_GAP if max_gap is None else max_gap
    return read_by_spans(spans, starts, length, out, gap, max_span, stats)


def transform_signal(values: np.ndarray, transform: str, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Apply the stored transform (``none`` or ``log1p``) to raw signal, casting to ``dtype``.

    ``values`` (float32) may be overwritten. The cast is fused into the last
    arithmetic step, so no extra pass over the data is made.
    """
    dtype = np.dtype(dtype or values.dtype)
    if transform == "none":
        return values.astype(dtype, copy=False)
    if transform == "log1p":
        # log(1 + x) rather than np.log1p: several times faster (SIMD log), and
        # its lost precision for x < 1e-6 is below what float16 storage keeps.
        np.maximum(values, 0.0, out=values)
        np.add(values, 1.0, out=values)
        return np.log(values, out=np.empty(values.shape, dtype=dtype), casting="same_kind")
    raise ValueError(f"unknown track transform {transform!r} (expected one of {TRANSFORMS})")


def invert_transform(values: np.ndarray, transform: str) -> np.ndarray:
    """Undo :func:`transform_signal` (for writing reconstructed tracks as bigWig)."""
    if transform == "none":
        return values
    if transform == "log1p":
        return np.expm1(values)
    raise ValueError(f"unknown track transform {transform!r} (expected one of {TRANSFORMS})")


def write_bigwig(
    path: str | os.PathLike[str],
    chrom_sizes: Mapping[str, int],
    chroms: np.ndarray,
    starts: np.ndarray,
    values: np.ndarray,
) -> Path:
    """Write per-base values of windows as a bigWig (temp file, then rename).

    Args:
        chrom_sizes: chromosome lengths for the header, in the order to write.
        chroms: ``str [n]`` chromosome of each window.
        starts: ``int64 [n]`` 0-based start of each window.
        values: ``float32 [n, L]`` per-base values.

    Overlapping windows are resolved by keeping, at every base, the value of
    the window that starts last (bigWig entries may not overlap).
    """
    chroms = np.asarray(chroms).astype(str)
    starts = np.asarray(starts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    length = values.shape[1]
    with atomic_output(path) as tmp, BigWigWriter(tmp, list(chrom_sizes.items()), zoom_levels=4) as bw:
        for chrom in chrom_sizes:
            rows = np.flatnonzero(chroms == chrom)
            if rows.size == 0:
                continue
            rows = rows[np.argsort(starts[rows], kind="stable")]
            pos = (starts[rows, None] + np.arange(length)).ravel()
            vals = values[rows].ravel()
            # Keep the last window's value at each base: reverse, unique, map back.
            order = np.argsort(pos, kind="stable")
            pos, vals = pos[order], vals[order]
            last = np.r_[pos[1:] != pos[:-1], True]
            pos, vals = pos[last], vals[last]
            keep = (pos >= 0) & (pos < chrom_sizes[chrom])
            pos, vals = pos[keep], vals[keep]
            bw.add_intervals(chrom, pos, pos + 1, vals)
    return Path(path)
