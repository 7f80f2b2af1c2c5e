"""Reading many equal-length windows of one chromosome as a few spans, and counting what was read.

FASTA sequence and bigWig signal are read the same way: sorted windows are
grouped into *clusters*, each read with one call covering the cluster's span,
and the windows are cut out of the span as rows of a strided view. Whether
two neighbouring windows share a read is a trade between the fixed cost of a
call and the per-base cost of reading the gap between them; the bases read
are also bounded relative to the bases the windows cover (see
:func:`cluster_windows`). :class:`ReadStats` counts calls, bases read and
bases needed, for the extraction report and the benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bases read may exceed the bases the windows cover by at most this factor
#: (per call of :func:`read_by_spans`): merging windows across gaps saves
#: calls but reads the gaps.
MAX_READ_RATIO = 1.5

#: A read never covers more than this many bases, which bounds its memory.
MAX_SPAN = 8_000_000


@dataclass
class ReadStats:
    """What a source (a FASTA, a bigWig) was asked for: calls, bases read, bases the windows need.

    ``bases_needed`` is the union of the windows of each :func:`read_by_spans`
    call (bp); ``bases_read`` the sum of the spans read (bp).
    """

    calls: int = 0
    bases_read: int = 0
    bases_needed: int = 0

    def add(self, other: ReadStats) -> None:
        """Add ``other``'s counts to these."""
        self.calls += other.calls
        self.bases_read += other.bases_read
        self.bases_needed += other.bases_needed

    def to_dict(self, bytes_per_base: int = 1) -> dict[str, Any]:
        """Counts for a report; ``bytes_per_base`` converts bases to bytes of data (4 for float32 signal)."""
        return {
            "calls": self.calls,
            "bases_read": self.bases_read,
            "bases_needed": self.bases_needed,
            "bytes_read": self.bases_read * bytes_per_base,
            "bytes_needed": self.bases_needed * bytes_per_base,
            "read_over_needed": round(self.bases_read / self.bases_needed, 4) if self.bases_needed else None,
        }


def covered_bases(starts: np.ndarray, length: int) -> int:
    """Bases covered by the union of windows ``[s, s + length)`` for sorted ``starts`` (bp)."""
    if len(starts) == 0:
        return 0
    # Each window adds the part of it not covered by the previous one (starts are sorted).
    return int(length + np.minimum(np.diff(starts), length).sum())


def cluster_windows(
    starts: np.ndarray, length: int, max_gap: int, max_span: int = MAX_SPAN, max_ratio: float = MAX_READ_RATIO
) -> np.ndarray:
    """Split sorted windows into clusters, each read with one call.

    Two neighbouring windows share a read when the gap between them is at
    most ``max_gap`` (bp; the gap a call's fixed cost pays for reading), and
    the gaps bridged in all add up to at most ``(max_ratio - 1)`` times the
    bases the windows cover. Gaps are bridged smallest first: every bridge
    saves one call, so the smallest gaps buy the most calls per base read.
    A cluster is then split so that no read covers more than ``max_span``
    bp (``0``: no limit), which bounds the memory of one read.

    Args:
        starts: ``int64 [n]`` sorted window starts.
        length: window length (bp).

    Returns:
        ``int64 [n_clusters + 1]`` boundaries: cluster ``k`` is
        ``starts[bounds[k]:bounds[k + 1]]``.
    """
    starts = np.asarray(starts, dtype=np.int64)
    n = len(starts)
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    gaps = starts[1:] - (starts[:-1] + length)  # < 0 where windows overlap: always one read
    bridged = gaps <= 0
    budget = (max_ratio - 1.0) * covered_bases(starts, length)
    candidates = np.flatnonzero((gaps > 0) & (gaps <= max_gap))
    if candidates.size:
        by_size = candidates[np.argsort(gaps[candidates], kind="stable")]
        affordable = np.cumsum(gaps[by_size]) <= budget
        bridged[by_size[affordable]] = True
    bounds = np.concatenate([[0], np.flatnonzero(~bridged) + 1, [n]]).astype(np.int64)
    if max_span <= 0:
        return bounds
    # Split the (rare) clusters that would read more than max_span bp, so that a read's memory stays bounded.
    too_long = np.flatnonzero(starts[bounds[1:] - 1] + length - starts[bounds[:-1]] > max_span)
    if not too_long.size:
        return bounds
    cuts = []
    for k in too_long.tolist():
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        rel = (starts[lo:hi] - starts[lo]) // max_span
        cuts.append(np.flatnonzero(np.diff(rel)) + 1 + lo)
    return np.union1d(bounds, np.concatenate(cuts)).astype(np.int64)


def read_by_spans(
    read_spans: Callable[[np.ndarray, np.ndarray], np.ndarray],
    starts: np.ndarray,
    length: int,
    out: np.ndarray,
    max_gap: int,
    max_span: int = MAX_SPAN,
    stats: ReadStats | None = None,
) -> np.ndarray:
    """Fill ``out [n, length]`` with windows ``[s, s + length)`` cut from the spans of their clusters.

    Args:
        read_spans: ``(span_starts, span_ends) -> [sum(span_ends - span_starts)]``:
            the values of sorted, disjoint spans, concatenated (in ``out``'s
            dtype, or cast on assignment). One call reads every span, so a
            source can batch its work over them.
        starts: ``int64 [n]`` sorted window starts.
        length: window length (bp).
        out: ``[n, length]`` destination; may be a strided view such as ``tracks[:, t]``.
        max_gap: largest gap (bp) worth reading to save a call (see :func:`cluster_windows`).
        stats: counts of reads (spans), bases read and needed, added to when given.

    Returns:
        ``out``.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) == 0:
        return out
    bounds = cluster_windows(starts, length, max_gap, max_span)
    span_starts = starts[bounds[:-1]]
    span_ends = starts[bounds[1:] - 1] + length
    span_lengths = span_ends - span_starts
    values = read_spans(span_starts, span_ends)
    # Every window is a row of one strided view of the concatenated spans: one gather for all of them.
    offsets = np.cumsum(span_lengths) - span_lengths
    cluster = np.repeat(np.arange(len(span_starts)), np.diff(bounds))
    step = values.strides[0]
    rows = np.lib.stride_tricks.as_strided(values, (len(values) - length + 1, length), (step, step), writeable=False)
    out[:] = rows[offsets[cluster] + starts - span_starts[cluster]]
    if stats is not None:
        stats.calls += len(span_starts)
        stats.bases_read += int(span_lengths.sum())
        stats.bases_needed += covered_bases(starts, length)
    return out


def span_by_span(read_span: Callable[[int, int], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A ``read_spans`` for :func:`read_by_spans` from a reader of one span ``(start, end) -> [end - start]``."""

    def read_spans(span_starts: np.ndarray, span_ends: np.ndarray) -> np.ndarray:
        return np.concatenate([read_span(int(a), int(b)) for a, b in zip(span_starts, span_ends, strict=True)])

    return read_spans
