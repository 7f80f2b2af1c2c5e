"""Markov-chain models of sequence, and the model-free anomaly baseline built on them.

A dinucleotide shuffle keeps a window's first base and every dinucleotide
count, and an order-1 Markov chain gives every such sequence the same
probability: against shuffled windows, only structure beyond dinucleotides
(motifs, repeats, longer words) can tell a real window apart. The
**likelihood ratio** of an order-``k`` chain to an order-1 chain, both fitted
on the training windows, reads exactly that structure (the background-model
correction of Ren et al. 2019, "Likelihood ratios for out-of-distribution
detection"), so its AUROC against shuffled windows is what plain k-mer
statistics of the genome can achieve: a reference point for the
autoencoder's anomaly score, and a ceiling hint when it is low (windows made
of order-1 background cannot be told from their shuffles by any score).

Vectorised: a fit is one pooled ``(k+1)``-mer count; scoring is one table
lookup over ``[N, L - k]`` positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqae.metrics._common import as_codes
from seqae.metrics.kmers import _rolling_index, pooled_kmer_counts

__all__ = ["MarkovModel", "fit_markov", "markov_ratio_score"]

#: Largest supported order (a ``4**(order + 1)`` table).
MAX_ORDER = 8


@dataclass(frozen=True)
class MarkovModel:
    """An order-``k`` Markov chain over A C G T.

    Attributes:
        order: context length ``k`` (0: base composition only).
        log_probs: ``float64 [4**k, 4]``, ``log P(next base | k preceding bases)``
            (context in base-4, first base most significant).
    """

    order: int
    log_probs: np.ndarray

    def log_likelihood(self, codes: np.ndarray) -> np.ndarray:
        """Mean log-probability (nats) per predicted base of every window, ``float64 [N]``.

        Bases whose context or self is N are skipped; a window with no
        predictable base gets 0.
        """
        codes = as_codes(codes)
        k = self.order + 1
        if codes.shape[1] < k:
            return np.zeros(codes.shape[0])
        index, valid = _rolling_index(codes, k)
        logp = self.log_probs.ravel()[index]
        total = np.where(valid, logp, 0.0).sum(axis=1)
        return total / np.maximum(valid.sum(axis=1), 1)


def fit_markov(codes: np.ndarray, order: int, pseudocount: float = 0.5) -> MarkovModel:
    """Fit an order-``order`` chain on windows ``uint8 [N, L]`` by (k+1)-mer counts plus a pseudocount.

    Raises:
        ValueError: an order outside ``0..MAX_ORDER`` or a negative pseudocount.
    """
    if not 0 <= order <= MAX_ORDER:
        raise ValueError(f"Markov order must be in 0..{MAX_ORDER}, got {order}")
    if pseudocount < 0:
        raise ValueError(f"pseudocount must be >= 0, got {pseudocount}")
    counts = pooled_kmer_counts(codes, order + 1).reshape(4**order, 4) + pseudocount
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_probs = np.log(np.divide(counts, totals, out=np.full_like(counts, 0.25), where=totals > 0))
    return MarkovModel(order=order, log_probs=log_probs)


def markov_ratio_score(high: MarkovModel, low: MarkovModel, codes: np.ndarray) -> np.ndarray:
    """Anomaly score ``-(log P_high - log P_low)`` per base, ``float64 [N]``: higher = less like the training windows.

    With ``low`` of order 1, the score of a window and of its dinucleotide
    shuffles differ only by what ``high`` sees beyond dinucleotides.
    """
    return -(high.log_likelihood(codes) - low.log_likelihood(codes))
