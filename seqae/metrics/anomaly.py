"""Out-of-distribution checks: AUROC and the sequence controls it is computed against.

* :func:`auroc` — rank (Mann–Whitney) AUROC, anomalous windows as the positive class.
* :func:`dinucleotide_shuffle` — each window shuffled with its exact
  dinucleotide counts kept (Altschul & Erickson 1985): a control with the
  same local composition but no higher-order grammar (motifs, repeats).
* :func:`foreign_windows` — i.i.d. sequence at a given GC, a crude "foreign genome".

The shuffle draws a uniformly random Eulerian path of each window's
dinucleotide multigraph (vertices = the 5 symbols A C G T N, one edge per
dinucleotide, N kept as a symbol so N-containing dinucleotides are preserved
too): (1) for every symbol but the window's last one, a "last exit" edge is
drawn so that the last exits form a random spanning arborescence towards the
last symbol (Wilson's loop-erased random walks, equivalent to
Altschul–Erickson's rejection step); (2) the other out-edges of every symbol
are put in random order, the last exit after them; (3) the path is read off
from the first symbol.  All windows are processed together: steps (1) and (2)
are array operations over the whole ``[N, L]`` block, and (3) advances every
window by one base per step, so the Python-level loop runs ``L`` times
however many windows there are (no loop per window).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from seqae.metrics._common import CODE_N, as_codes, as_rng

__all__ = ["auroc", "dinucleotide_shuffle", "dinucleotide_counts", "foreign_windows"]

# Symbols of the shuffle graph: A C G T N (codes > 4 are folded into N).
_N_SYMBOLS = 5


def auroc(scores_normal: np.ndarray, scores_anomalous: np.ndarray) -> float:
    """Area under the ROC curve for telling anomalous from normal by score.

    Higher score = more anomalous.  Computed from ranks with ties averaged
    (Mann–Whitney U / (n_normal * n_anomalous)), so it equals
    ``sklearn.metrics.roc_auc_score`` with anomalous as the positive class.

    Args:
        scores_normal: ``[N_0]`` scores of in-distribution windows.
        scores_anomalous: ``[N_1]`` scores of anomalous windows.

    Returns:
        AUROC in [0, 1]: 1 = every anomalous window scores above every
        normal one, 0.5 = no separation, 0 = reversed.

    Raises:
        ValueError: an empty group or non-finite scores.
    """
    s0 = np.asarray(scores_normal, dtype=np.float64).ravel()
    s1 = np.asarray(scores_anomalous, dtype=np.float64).ravel()
    if s0.size == 0 or s1.size == 0:
        raise ValueError("auroc needs at least one normal and one anomalous score")
    if not (np.isfinite(s0).all() and np.isfinite(s1).all()):
        raise ValueError("auroc scores must be finite")
    ranks = rankdata(np.concatenate([s0, s1]), method="average")
    n0, n1 = s0.size, s1.size
    u = ranks[n0:].sum() - n1 * (n1 + 1) / 2.0
    return float(u / (n0 * n1))


def dinucleotide_counts(codes: np.ndarray) -> np.ndarray:
    """``int64 [N, 5, 5]``: count of each dinucleotide ``(first, second)`` per window, N (>= 4) as symbol 4."""
    codes = np.minimum(as_codes(codes), CODE_N).astype(np.int64)
    n = codes.shape[0]
    if codes.shape[1] < 2:
        return np.zeros((n, _N_SYMBOLS, _N_SYMBOLS), dtype=np.int64)
    pair = codes[:, :-1] * _N_SYMBOLS + codes[:, 1:] + np.arange(n)[:, None] * _N_SYMBOLS**2
    return np.bincount(pair.ravel(), minlength=n * _N_SYMBOLS**2).reshape(n, _N_SYMBOLS, _N_SYMBOLS)


def _sample_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row of ``weights [M, S]`` with probability proportional to the weights."""
    cum = np.cumsum(weights, axis=1)
    r = rng.random(weights.shape[0]) * cum[:, -1]
    return np.minimum((cum <= r[:, None]).sum(axis=1), weights.shape[1] - 1)


def _random_arborescence(
    counts: np.ndarray, present: np.ndarray, root: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Wilson's algorithm, all windows at once: ``int64 [N, S]`` next symbol on each vertex's last exit.

    ``counts [N, S, S]`` are the edge multiplicities; self-loops are left out
    (Wilson erases them anyway).  Entries of absent vertices and of the root
    are the root itself.
    """
    n, s, _ = counts.shape
    weights = counts.astype(np.float64).copy()
    weights[:, np.arange(s), np.arange(s)] = 0.0
    rows = np.arange(n)
    nxt = np.repeat(root[:, None], s, axis=1)
    in_tree = ~present.copy()
    in_tree[rows, root] = True
    for start in range(s):  # one loop per alphabet symbol
        todo = ~in_tree[:, start]
        if not todo.any():
            continue
        # Loop-erased random walk from `start` until the tree is hit (overwriting nxt erases loops).
        cur = np.full(n, start)
        walking = todo.copy()
        while walking.any():
            idx = np.flatnonzero(walking)
            step = _sample_rows(weights[idx, cur[idx]], rng)
            nxt[idx, cur[idx]] = step
            cur[idx] = step
            walking[idx] = ~in_tree[idx, step]
        # Retrace the erased path and add it to the tree.
        cur = np.full(n, start)
        tracing = todo.copy()
        while tracing.any():
            idx = np.flatnonzero(tracing)
            in_tree[idx, cur[idx]] = True
            cur[idx] = nxt[idx, cur[idx]]
            tracing[idx] = ~in_tree[idx, cur[idx]]
    return nxt


def dinucleotide_shuffle(codes: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Shuffle every window keeping its exact dinucleotide counts (Altschul–Erickson).

    The first and last bases and the count of every dinucleotide (including
    those with N) are kept; the result is drawn uniformly among the sequences
    that share them.  Windows with a single such sequence (e.g. a
    homopolymer) come back unchanged.

    Args:
        codes: base codes ``uint8 [N, L]`` (codes > 4 are returned as 4).
        rng: a ``numpy.random.Generator`` or a seed.

    Returns:
        ``uint8 [N, L]`` shuffled codes.
    """
    rng = as_rng(rng)
    codes = np.minimum(as_codes(codes), CODE_N).astype(np.int64)
    n, length = codes.shape
    if length < 3 or n == 0:
        return codes.astype(np.uint8)
    n_edges = length - 1
    rows = np.arange(n)
    src, dst = codes[:, :-1], codes[:, 1:]
    counts = dinucleotide_counts(codes)
    out_deg = counts.sum(axis=2)
    first, last = codes[:, 0], codes[:, -1]
    present = out_deg > 0
    present[rows, last] = True
    last_exit = _random_arborescence(counts, present, last, rng)

    # Mark one edge u -> last_exit[u] per vertex u != last (the first such edge; edges with the same
    # endpoints are interchangeable) to go at the end of u's out-edge list.
    is_exit_edge = (dst == np.take_along_axis(last_exit, src, axis=1)) & (src != last[:, None])
    designated = np.zeros_like(is_exit_edge)
    for u in range(_N_SYMBOLS):  # one loop per symbol
        m = is_exit_edge & (src == u)
        designated |= m & (np.cumsum(m, axis=1) == 1)
    # Random order within each source symbol's block, designated edge last.
    key = src * 4.0 + designated * 2.0 + rng.random(src.shape)
    order = np.argsort(key, axis=1, kind="stable")
    targets = np.take_along_axis(dst, order, axis=1)  # [N, L-1], grouped by source symbol

    # Walk: pointer into each (window, symbol) block of targets.
    block_start = np.concatenate([np.zeros((n, 1), dtype=np.int64), np.cumsum(out_deg, axis=1)[:, :-1]], axis=1)
    pointer = (block_start + rows[:, None] * n_edges).ravel()
    flat_targets = targets.ravel()
    out = np.empty((n, length), dtype=np.uint8)
    out[:, 0] = first
    cur = first.copy()
    sym_base = rows * _N_SYMBOLS
    for t in range(1, length):  # one step for all windows at once
        slot = sym_base + cur
        cur = flat_targets[pointer[slot]]
        pointer[slot] += 1
        out[:, t] = cur
    return out


def foreign_windows(n: int, length: int, gc: float = 0.5, rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Random i.i.d. windows at a given GC content, a simple "foreign genome" control.

    Args:
        n: number of windows.
        length: bases per window.
        gc: expected G+C fraction (0..1); C and G each ``gc/2``, A and T each ``(1-gc)/2``.
        rng: a ``numpy.random.Generator`` or a seed.

    Returns:
        ``uint8 [n, length]`` codes (no N).
    """
    if not 0.0 <= gc <= 1.0:
        raise ValueError(f"gc must be in [0, 1], got {gc}")
    rng = as_rng(rng)
    p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    # Inverse-CDF sampling: one uniform per base.
    return np.searchsorted(np.cumsum(p)[:-1], rng.random((n, length)), side="right").astype(np.uint8)
