"""Per-base signal tracks: reading bigWig files span by span, writing bigWig.

Reading is organised around *clusters* of nearby windows: one
``pyBigWig.values`` call covers a whole cluster's span and the windows are then
cut out of it with one fancy-indexing step, so dense peak sets cost a few
large reads per chromosome instead of one read per window.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyBigWig

from seqae.errors import InputError
from seqae.fileio import atomic_output, require_file
from seqae.genome import ChromAliases

TRANSFORMS = ("none", "log1p")


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
            them by ``aliases`` (:class:`seqae.genome.ChromAliases`, ``auto`` by default).
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

    def has_chrom(self, chrom: str) -> bool:
        """Whether the bigWig holds the FASTA chromosome ``chrom`` (under any spelling)."""
        return chrom in self._own_name

    def values(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Signal over ``[start, end)`` of FASTA chromosome ``chrom``, ``float32 [end - start]``.

        Positions without data (NaN) and positions past the bigWig's own
        chromosome end read as 0.

        Raises:
            InputError: the bigWig has no such chromosome.
        """
        if chrom not in self._own_name:
            raise InputError(self.path, f"bigWig has no chromosome {chrom!r} (nor chr-prefixed/unprefixed spelling)")
        stop = min(end, self._own_size[chrom])
        if stop <= start:
            return np.zeros(end - start, dtype=np.float32)
        vals = self._bw.values(self._own_name[chrom], int(start), int(stop), numpy=True).astype(np.float32, copy=False)
        np.copyto(vals, 0.0, where=~np.isfinite(vals))
        if stop < end:
            vals = np.concatenate([vals, np.zeros(end - stop, dtype=np.float32)])
        return vals

    def close(self) -> None:
        """Close the bigWig."""
        self._bw.close()


def cluster_windows(starts: np.ndarray, length: int, max_gap: int, max_span: int) -> np.ndarray:
    """Split sorted windows into clusters read with one bigWig call each.

    A new cluster begins where the gap to the previous window's end exceeds
    ``max_gap`` or where the cluster's span would exceed ``max_span`` (bp),
    which bounds the memory of one read.

    Args:
        starts: ``int64 [n]`` sorted window starts.
        length: window length (bp).

    Returns:
        ``int64 [n_clusters + 1]`` boundaries: cluster ``k`` is
        ``starts[bounds[k]:bounds[k + 1]]``.
    """
    n = len(starts)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    breaks = np.flatnonzero(starts[1:] - (starts[:-1] + length) > max_gap) + 1
    bounds = np.concatenate([[0], breaks, [n]]).astype(np.int64)
    if max_span <= 0:
        return bounds
    # Split long clusters so that a read never covers more than max_span bp.
    pieces = [bounds[:1]]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if starts[hi - 1] + length - starts[lo] <= max_span:
            pieces.append(np.array([hi]))
            continue
        rel = (starts[lo:hi] - starts[lo]) // max_span
        cuts = np.flatnonzero(np.diff(rel)) + 1 + lo
        pieces.append(np.concatenate([cuts, [hi]]))
    return np.concatenate(pieces)


def read_windows(
    track: BigWigTrack,
    chrom: str,
    starts: np.ndarray,
    length: int,
    transform: str = "none",
    dtype: np.dtype | type = np.float32,
    max_gap: int = 20_000,
    max_span: int = 8_000_000,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Signal of equal-length windows on one chromosome, ``dtype [n, length]``.

    ``out`` (``[n, length]``, may be a strided view such as ``tracks[:, t]``)
    receives the result directly; its dtype then overrides ``dtype``.

    ``starts`` must be sorted. One ``values`` call is made per cluster of
    nearby windows (see :func:`cluster_windows`); the transform and the cast
    to ``dtype`` are applied once to the cluster's span, before overlapping
    windows copy it, and the windows are cut out as rows of a strided view.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if out is None:
        out = np.empty((len(starts), length), dtype=dtype)
    dtype = out.dtype
    bounds = cluster_windows(starts, length, max_gap, max_span)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        span_start = int(starts[lo])
        span = transform_signal(track.values(chrom, span_start, int(starts[hi - 1]) + length), transform, dtype)
        out[lo:hi] = np.lib.stride_tricks.sliding_window_view(span, length)[starts[lo:hi] - span_start]
    return out


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
    with atomic_output(path) as tmp:
        bw = pyBigWig.open(str(tmp), "w")
        bw.addHeader([(c, int(s)) for c, s in chrom_sizes.items()], maxZooms=4)
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
            bw.addEntries(
                np.full(pos.size, chrom), pos.astype(np.int64), ends=(pos + 1).astype(np.int64), values=vals
            )
        bw.close()
    return Path(path)
