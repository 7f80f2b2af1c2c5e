"""Windows read as clusters of spans: the merge rule, the read bound, the counts."""

from __future__ import annotations

import itertools

import numpy as np

from seqae.spans import (
    ReadStats,
    cluster_windows,
    covered_bases,
    read_by_spans,
    span_by_span,
)


def test_cluster_windows_respects_gap_and_span():
    starts = np.array([0, 10, 20, 1000, 1010, 5000])
    bounds = cluster_windows(starts, 100, max_gap=50, max_span=0)
    assert bounds.tolist() == [0, 3, 5, 6]
    bounds = cluster_windows(np.arange(0, 1000, 10), 100, max_gap=50, max_span=300)
    spans = list(itertools.pairwise(bounds))
    assert bounds[0] == 0 and bounds[-1] == 100
    assert all(np.arange(0, 1000, 10)[e - 1] + 100 - np.arange(0, 1000, 10)[s] <= 400 for s, e in spans)


def test_long_clusters_are_cut_where_their_reads_cross_a_max_span_boundary():
    """Only clusters longer than max_span are cut, each where (start - its first start) // max_span changes."""
    rng = np.random.default_rng(5)
    starts = np.sort(np.concatenate([rng.integers(0, 5_000, 300), rng.integers(20_000, 21_000, 40), [90_000]]))
    whole = cluster_windows(starts, 100, max_gap=200, max_span=0)
    cut = cluster_windows(starts, 100, max_gap=200, max_span=1_000)
    want = [0]
    for lo, hi in itertools.pairwise(whole.tolist()):
        rel = (starts[lo:hi] - starts[lo]) // 1_000
        want += [lo + int(i) + 1 for i in np.flatnonzero(np.diff(rel))] + [hi]
    assert cut.tolist() == want
    assert len(cut) > len(whole)  # the dense first stretch was cut


def test_covered_bases_is_the_union():
    assert covered_bases(np.array([], dtype=np.int64), 100) == 0
    assert covered_bases(np.array([0, 0, 50, 500]), 100) == 250  # [0, 150) and [500, 600)


def test_gaps_bridged_smallest_first_within_the_read_bound():
    """Five windows of 100 bp with gaps 90, 10, 60, 30 between them: 500 bp covered."""
    starts = np.array([0, 190, 300, 460, 590])
    bounds = cluster_windows(starts, 100, max_gap=1000, max_span=0, max_ratio=1.5)
    # A budget of 250 bp of gaps: 10 + 30 + 60 + 90 = 190 fits, all bridged.
    assert bounds.tolist() == [0, 5]
    bounds = cluster_windows(starts, 100, max_gap=1000, max_span=0, max_ratio=1.25)
    # A budget of 125 bp: 10, 30, 60 (sum 100) bridged; adding 90 would exceed it.
    assert bounds.tolist() == [0, 1, 5]
    bounds = cluster_windows(starts, 100, max_gap=20, max_span=0)
    assert bounds.tolist() == [0, 1, 3, 4, 5]  # only the 10 bp gap is worth reading


def test_read_by_spans_cuts_the_windows_and_counts_reads():
    rng = np.random.default_rng(0)
    source = rng.random(50_000).astype(np.float32)
    calls = []

    def read_span(lo: int, hi: int) -> np.ndarray:
        calls.append((lo, hi))
        return source[lo:hi].copy()

    # Dense windows (overlapping) and sparse ones far apart.
    starts = np.sort(np.concatenate([np.arange(1000, 3000, 50), rng.integers(5000, 49_000, 30)]))
    stats = ReadStats()
    out = np.empty((len(starts), 120), dtype=np.float32)
    read_by_spans(span_by_span(read_span), starts, 120, out, max_gap=300, stats=stats)
    for row, s in zip(out, starts, strict=True):
        np.testing.assert_array_equal(row, source[s : s + 120])
    assert stats.calls == len(calls) < len(starts)
    assert stats.bases_read == sum(hi - lo for lo, hi in calls)
    assert stats.bases_needed == covered_bases(starts, 120)
    assert stats.bases_needed <= stats.bases_read <= 1.5 * stats.bases_needed
