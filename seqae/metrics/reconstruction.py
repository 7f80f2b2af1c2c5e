"""Reconstruction quality: base accuracy, track correlation, codebook usage, the composition reference."""

from __future__ import annotations

import numpy as np

from seqae.metrics._common import CODE_N
from seqae.metrics.kmers import kmer_counts

__all__ = ["composition_entropy", "sequence_accuracy", "track_pearson", "perplexity"]


def sequence_accuracy(pred_codes: np.ndarray, true_codes: np.ndarray) -> float:
    """Fraction of called bases reconstructed exactly.

    Args:
        pred_codes: predicted codes ``[N, L]`` (any shape matching ``true_codes``).
        true_codes: true codes ``uint8 [N, L]``; positions where the truth is
            N (code >= 4) are left out.

    Returns:
        Accuracy in [0, 1]; NaN when every true base is N.
    """
    pred = np.asarray(pred_codes)
    true = np.asarray(true_codes)
    if pred.shape != true.shape:
        raise ValueError(f"pred_codes {pred.shape} and true_codes {true.shape} differ in shape")
    called = true < CODE_N
    n = int(called.sum())
    if n == 0:
        return float("nan")
    return float(np.count_nonzero((pred == true) & called) / n)


def composition_entropy(codes: np.ndarray) -> np.ndarray:
    """Per-window entropy of the window's own base composition, ``float64 [N]`` (nats per called base).

    The sequence cross-entropy of a decoder that knows only how many of each
    base the window has: a reconstruction error below it means the latent
    carries where the bases are, not only their counts. A window and any
    shuffle of it have the same value, so a model's gain over it on real
    windows *less* its gain on their shuffles is what the model reads of the
    order beyond composition (motifs, repeats). N (codes >= 4) is left out;
    a window with no called base gets NaN.

    Args:
        codes: base codes ``uint8 [N, L]``.
    """
    from scipy.special import xlogy

    counts = kmer_counts(codes, 1).astype(np.float64)  # [N, 4], N left out
    total = counts.sum(axis=1, keepdims=True)
    freq = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    out = -xlogy(freq, freq).sum(axis=1)  # 0 log 0 = 0
    out[total[:, 0] == 0] = np.nan
    return out


def track_pearson(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """Pearson correlation between predicted and true signal tracks.

    Args:
        pred: predicted tracks ``[N, T, L]`` (``[N, L]`` is one track).
        true: true tracks, same shape.

    Returns:
        dict of ``float64 [T]`` arrays:
        ``mean_window_r`` — mean over windows of the per-window Pearson r
        along the L bases (windows where either profile is constant have no
        r and are left out; NaN if no window has one);
        ``pooled_r`` — Pearson r over all ``N * L`` values of the track
        (NaN if either side is constant);
        ``n_windows`` — windows that entered ``mean_window_r``.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and true {t.shape} differ in shape")
    if p.ndim == 2:
        p, t = p[:, None, :], t[:, None, :]
    if p.ndim != 3:
        raise ValueError(f"tracks must be [N, T, L] or [N, L], got shape {p.shape}")

    def _r(a: np.ndarray, b: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
        # A constant profile (max == min exactly) has no correlation: NaN rather than 0/0 noise.
        ok = (np.ptp(a, axis=axis) > 0) & (np.ptp(b, axis=axis) > 0)
        a = a - a.mean(axis=axis, keepdims=True)
        b = b - b.mean(axis=axis, keepdims=True)
        num = (a * b).sum(axis=axis)
        den = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
        r = np.divide(num, den, out=np.full(num.shape, np.nan), where=ok & (den > 0))
        return np.clip(r, -1.0, 1.0)

    per_window = _r(p, t, axis=(2,))  # [N, T]
    defined = np.isfinite(per_window)
    n_def = defined.sum(axis=0)
    mean_r = np.divide(
        np.where(defined, per_window, 0.0).sum(axis=0), n_def, out=np.full(p.shape[1], np.nan), where=n_def > 0
    )
    pooled = _r(p.transpose(1, 0, 2), t.transpose(1, 0, 2), axis=(1, 2))  # [T]
    return {"mean_window_r": mean_r, "pooled_r": pooled, "n_windows": n_def.astype(np.int64)}


def perplexity(indices: np.ndarray, n_codes: int) -> float:
    """Codebook perplexity: ``exp`` of the entropy (nats) of code usage.

    Args:
        indices: code indices of any shape (e.g. VQ assignments ``[N, S]``), in ``0..n_codes-1``.
        n_codes: codebook size.

    Returns:
        Between 1 (a single code used) and ``n_codes`` (all codes used
        equally often); NaN for no indices.
    """
    idx = np.asarray(indices).ravel()
    if idx.size == 0:
        return float("nan")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be integers, got {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n_codes:
        raise ValueError(f"indices must lie in 0..{n_codes - 1}")
    p = np.bincount(idx, minlength=n_codes) / idx.size
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
