"""Site patterns of alignments: identical columns counted once, with a weight.

The likelihood of an alignment is the product over columns, and identical
columns have identical likelihoods, so pruning runs once per distinct column
(a *pattern*) and the log-likelihood is ``sum_k weight_k * log L(pattern_k)``.
Simulated and real alignments of a few dozen taxa typically have 2 to 5 times
fewer patterns than sites.

Tip partial likelihoods: a base is a one-hot row; a gap or ``N``
(:data:`~seqae.phylo.alphabet.CODE_MISSING`) is all ones, i.e. "any base",
as IQ-TREE treats them. The codes of :mod:`seqae.phylo.alphabet` (0..4) keep
only "missing" for every ambiguity code; :func:`partial_codes` reads
sequence text into codes 0..14 that keep them, codes 5..14 for
``R Y S W K M B D H V``, whose partials are ones at their two or three bases,
as IQ-TREE reads them (:func:`partial_codes` and :func:`partial_text` live
in :mod:`seqae.phylo.alphabet`, free of torch, and are re-exported here).

A batch of families is padded to ``N`` taxa (all-missing rows) and ``P``
patterns (all-missing columns of weight 0): padding changes no likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqae.phylo.alphabet import (
    AMBIGUITY_BASES,
    CODE_MISSING,
    partial_codes,
    partial_text,
)

__all__ = [
    "AMBIGUITY_BASES",
    "PatternBatch",
    "SitePatterns",
    "partial_codes",
    "partial_text",
    "pattern_batch",
    "site_patterns",
    "tip_partials",
]

#: Tip partial likelihood of each code ``[15, 4]``: A C G T one-hot, missing all ones, ambiguity codes their bases.
_TIP_TABLE = np.vstack(
    [np.eye(4), np.ones((1, 4))]
    + [np.isin(list("ACGT"), list(bases)).astype(float)[None] for bases in AMBIGUITY_BASES.values()]
)


@dataclass(frozen=True)
class SitePatterns:
    """The distinct columns of one alignment.

    Attributes:
        codes: ``[n, P]`` uint8 codes of the patterns (in the alignment's row order).
        weights: ``[P]`` how many columns have each pattern (sum = sites).
        site_pattern: ``[L]`` the pattern of each column.
    """

    codes: np.ndarray
    weights: np.ndarray
    site_pattern: np.ndarray

    @property
    def n_sites(self) -> int:
        return int(self.site_pattern.size)


def site_patterns(codes: np.ndarray, source: str = "alignment") -> SitePatterns:
    """Compress an alignment ``[n, L]`` of codes (0..3 bases, 4 missing, 5..14 ambiguity codes) into patterns.

    Args:
        codes: ``[n, L]`` uint8 codes, as :meth:`seqae.phylo.io.Family.codes`
            or :func:`partial_codes` give.
        source: what to call the alignment in an error (e.g. its file).

    Raises:
        ValueError: not ``[n, L]`` with ``L >= 1``, a code above 4, or a column
            with no base at all (only gaps / ambiguous characters), named by
            its 1-based number.
    """
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{source}: codes must be [n_taxa, n_sites] with at least one site, got shape {arr.shape}")
    top = _TIP_TABLE.shape[0] - 1
    if arr.max(initial=0) > top:
        raise ValueError(f"{source}: codes must be 0..{top}, found {int(arr.max())}")
    empty = np.flatnonzero((arr == CODE_MISSING).all(axis=0))
    if empty.size:
        raise ValueError(
            f"{source}: alignment column {int(empty[0]) + 1} has only gaps or N"
            + (f" ({empty.size} such columns)" if empty.size > 1 else "")
        )
    patterns, inverse, counts = np.unique(arr.astype(np.uint8), axis=1, return_inverse=True, return_counts=True)
    return SitePatterns(codes=patterns, weights=counts.astype(np.float64), site_pattern=inverse.reshape(-1))


def tip_partials(codes: np.ndarray) -> np.ndarray:
    """``[..., 4]`` partial likelihoods of codes ``[...]`` (float64; missing = all ones)."""
    return _TIP_TABLE[np.asarray(codes, dtype=np.int64)]


@dataclass(frozen=True)
class PatternBatch:
    """Patterns of a batch of families padded to ``N`` taxa and ``P`` patterns.

    Attributes:
        patterns: each family's :class:`SitePatterns`.
        tips: ``[B, N, P, 4]`` float64 tip partial likelihoods.
        weights: ``[B, P]`` float64 column counts (0 on padding).
    """

    patterns: list[SitePatterns]
    tips: np.ndarray
    weights: np.ndarray

    def tensors(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        """``(tips, weights)`` as tensors."""
        return (
            torch.as_tensor(self.tips, dtype=dtype, device=device),
            torch.as_tensor(self.weights, dtype=dtype, device=device),
        )


def pattern_batch(patterns: Sequence[SitePatterns], n_taxa: int | None = None) -> PatternBatch:
    """Pad and stack families' patterns (default ``N``: the most taxa in the batch)."""
    if not patterns:
        raise ValueError("no alignments to batch")
    big_n = max(p.codes.shape[0] for p in patterns) if n_taxa is None else int(n_taxa)
    if big_n < max(p.codes.shape[0] for p in patterns):
        raise ValueError(
            f"n_taxa={big_n} is below the largest alignment's {max(p.codes.shape[0] for p in patterns)} taxa"
        )
    big_p = max(p.codes.shape[1] for p in patterns)
    codes = np.full((len(patterns), big_n, big_p), CODE_MISSING, dtype=np.uint8)
    weights = np.zeros((len(patterns), big_p))
    for b, p in enumerate(patterns):
        n, k = p.codes.shape
        codes[b, :n, :k] = p.codes
        weights[b, :k] = p.weights
    return PatternBatch(patterns=list(patterns), tips=tip_partials(codes), weights=weights)
