"""k-mer counts, frequencies and the k-mer spectrum distance between window sets.

A k-mer is indexed in base 4 with the first base most significant:
``index = sum_j code[j] * 4**(k-1-j)`` (A=0 C=1 G=2 T=3), so for k=2 the
columns are ``AA AC AG AT CA ... TT`` (:func:`kmer_names`).  k-mers that
contain an N (code >= 4) are skipped.  With ``canonical=True`` a k-mer and its
reverse complement are merged into one column, labelled by the smaller index
of the two (:func:`canonical_kmer_indices`); a reverse-complement palindrome
(e.g. ``ACGT``) is counted once per occurrence.

Everything is vectorised: one rolling base-4 index over the whole ``[N, L]``
block (a loop over the k positions of a k-mer only) and one ``np.bincount``
on ``window * 4**k + index``.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from scipy.spatial.distance import jensenshannon

from seqae.metrics._common import CODE_N, N_BASES, as_codes

__all__ = [
    "kmer_names",
    "kmer_counts",
    "kmer_frequencies",
    "canonical_kmer_indices",
    "reverse_complement_index",
    "pooled_kmer_counts",
    "kmer_spectrum_distance",
    "multi_k_frequencies",
]

# Rows per bincount block: bounds the temporary int arrays to ~block * L * 8 bytes.
_BLOCK_ROWS = 4096


def _check_k(k: int, max_k: int = 12) -> int:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > max_k:
        raise ValueError(f"k={k} gives {4**k} columns per window; use k <= {max_k}")
    return int(k)


def kmer_names(k: int, canonical: bool = False) -> list[str]:
    """Column labels of :func:`kmer_counts` (``4**k`` names, or the canonical subset)."""
    k = _check_k(k)
    idx = np.arange(4**k)
    digits = (idx[:, None] // 4 ** np.arange(k - 1, -1, -1)[None, :]) % 4
    letters = np.array(list("ACGT"))[digits]
    names = ["".join(row) for row in letters]
    if canonical:
        return [names[i] for i in canonical_kmer_indices(k)]
    return names


@lru_cache(maxsize=16)
def _revcomp_table(k: int) -> np.ndarray:
    idx = np.arange(4**k, dtype=np.int64)
    digits = (idx[:, None] // 4 ** np.arange(k - 1, -1, -1)[None, :]) % 4  # most significant first
    rc_digits = 3 - digits[:, ::-1]
    table = rc_digits @ (4 ** np.arange(k - 1, -1, -1))
    table.setflags(write=False)
    return table


def reverse_complement_index(k: int) -> np.ndarray:
    """``int64 [4**k]``: index of the reverse complement of each k-mer index."""
    return _revcomp_table(_check_k(k))


def canonical_kmer_indices(k: int) -> np.ndarray:
    """``int64 [M]``: the k-mer indices kept with ``canonical=True`` (``i <= revcomp(i)``), ascending.

    ``M = 4**k / 2`` for odd k and ``(4**k + 4**(k/2)) / 2`` for even k.
    """
    rc = reverse_complement_index(k)
    idx = np.arange(4**k)
    return idx[idx <= rc]


def _merge_canonical(counts: np.ndarray, k: int) -> np.ndarray:
    """``[..., 4**k]`` -> ``[..., M]``: add each k-mer's reverse complement into the smaller index."""
    rc = reverse_complement_index(k)
    keep = canonical_kmer_indices(k)
    partner = rc[keep]
    not_palindrome = partner != keep
    merged = counts[..., keep].copy()
    merged[..., not_palindrome] += counts[..., partner[not_palindrome]]
    return merged


def _rolling_index(codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Base-4 index ``[n, L-k+1]`` of every k-mer and a mask of the k-mers without N."""
    n_pos = codes.shape[1] - k + 1
    dtype = np.int32 if k <= 15 else np.int64
    clipped = np.minimum(codes, N_BASES - 1).astype(dtype, copy=False)
    index = clipped[:, 0:n_pos].copy()
    for j in range(1, k):
        index *= N_BASES
        index += clipped[:, j : j + n_pos]
    is_n = codes >= CODE_N
    if k == 1:
        valid = ~is_n
    else:
        # k-mers without N: no N in positions [i, i+k) (cumulative sum of N flags).
        csum = np.zeros((codes.shape[0], codes.shape[1] + 1), dtype=np.int32)
        np.cumsum(is_n, axis=1, out=csum[:, 1:])
        valid = (csum[:, k:] - csum[:, :n_pos]) == 0
    return index, valid


def kmer_counts(codes: np.ndarray, k: int, canonical: bool = False) -> np.ndarray:
    """Count the k-mers of every window.

    Args:
        codes: base codes ``uint8 [N, L]`` (A=0 C=1 G=2 T=3, N=4; ``[L]`` is one window).
        k: k-mer length (1..12).
        canonical: merge each k-mer with its reverse complement
            (columns :func:`canonical_kmer_indices`).

    Returns:
        ``float32 [N, 4**k]`` (or ``[N, M]`` canonical) counts; k-mers that
        overlap an N are not counted, so a row sums to the number of N-free
        k-mers in the window (``L - k + 1`` without N).
    """
    k = _check_k(k)
    codes = as_codes(codes)
    n_win, length = codes.shape
    n_kmers = 4**k
    out = np.zeros((n_win, n_kmers), dtype=np.float32)
    if length >= k and n_win:
        block = max(1, min(_BLOCK_ROWS, (1 << 24) // max(length, 1)))
        for start in range(0, n_win, block):  # blocks of rows bound the memory, not a loop per window
            chunk = codes[start : start + block]
            index, valid = _rolling_index(chunk, k)
            rows = chunk.shape[0]
            offsets = np.arange(rows, dtype=np.int64)[:, None] * n_kmers
            flat = (index + offsets)[valid]
            out[start : start + rows] = np.bincount(flat, minlength=rows * n_kmers).reshape(rows, n_kmers)
    return _merge_canonical(out, k) if canonical else out


def kmer_frequencies(codes: np.ndarray, k: int, canonical: bool = False) -> np.ndarray:
    """k-mer counts normalised to sum to 1 in every window.

    Args: as :func:`kmer_counts`.

    Returns:
        ``float32 [N, 4**k]`` (or ``[N, M]``); a window without any N-free
        k-mer gets a row of zeros.
    """
    counts = kmer_counts(codes, k, canonical=canonical)
    total = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def pooled_kmer_counts(codes: np.ndarray, k: int, canonical: bool = False) -> np.ndarray:
    """``float64 [4**k]`` (or ``[M]``): k-mer counts summed over all windows of ``codes``."""
    k = _check_k(k)
    codes = as_codes(codes)
    n_win, length = codes.shape
    total = np.zeros(4**k, dtype=np.float64)
    if length >= k and n_win:
        block = max(1, min(_BLOCK_ROWS, (1 << 24) // max(length, 1)))
        for start in range(0, n_win, block):
            index, valid = _rolling_index(codes[start : start + block], k)
            total += np.bincount(index[valid], minlength=4**k)
    return _merge_canonical(total, k) if canonical else total


def kmer_spectrum_distance(codes_a: np.ndarray, codes_b: np.ndarray, k: int, canonical: bool = False) -> float:
    """Jensen–Shannon distance between the pooled k-mer distributions of two window sets.

    Each set's k-mer counts are summed over its windows and normalised to a
    distribution over the ``4**k`` (or canonical) k-mers; the distance is the
    square root of the Jensen–Shannon divergence in bits, so it lies in
    ``[0, 1]``: 0 for identical compositions (e.g. the same windows in any
    order), 1 for disjoint k-mer supports.

    Args:
        codes_a, codes_b: base codes ``[N_a, L_a]`` and ``[N_b, L_b]`` (lengths may differ).
        k: k-mer length.
        canonical: merge reverse complements first (strand-agnostic comparison).

    Returns:
        The distance (float); NaN when either set has no N-free k-mer.
    """
    p = pooled_kmer_counts(codes_a, k, canonical=canonical)
    q = pooled_kmer_counts(codes_b, k, canonical=canonical)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    d = float(jensenshannon(p / p.sum(), q / q.sum(), base=2))
    return 0.0 if not np.isfinite(d) or d < 0 else min(d, 1.0)


def multi_k_frequencies(codes: np.ndarray, ks: Iterable[int], canonical: bool = False) -> np.ndarray:
    """``float32 [N, sum_k 4**k]``: :func:`kmer_frequencies` for each k, concatenated in the order of ``ks``."""
    ks = list(ks)
    if not ks:
        raise ValueError("ks must name at least one k-mer length")
    return np.concatenate([kmer_frequencies(codes, k, canonical=canonical) for k in ks], axis=1)
