"""Baselines that any autoencoder must beat: PCA on one-hot windows and k-mer frequencies.

One-hot layout used here: ``[N, L, 4]`` (A, C, G, T per position; an N is
all zeros), flattened position-major to ``[N, 4 * L]`` (columns
``4*j .. 4*j+3`` are position ``j``).  A channel-major ``[N, 4, L]`` array
(the usual PyTorch conv layout) is also accepted and transposed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from seqae import alphabet
from seqae.metrics._common import CODE_N, N_BASES, as_codes
from seqae.metrics.kmers import kmer_frequencies, multi_k_frequencies

__all__ = ["one_hot", "pca_baseline", "kmer_baseline_features"]


def one_hot(codes: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """Base codes ``[N, L]`` (checked) -> one-hot ``[N, L, 4]`` (N positions all zero): :func:`seqae.alphabet.one_hot`."""
    return alphabet.one_hot(as_codes(codes), dtype)


def _train_matrix(train: np.ndarray, length: int) -> np.ndarray:
    """Training windows as a flat position-major one-hot ``float32 [N, 4 * L]``."""
    arr = np.asarray(train)
    if arr.ndim == 2 and arr.shape[1] == length and np.issubdtype(arr.dtype, np.integer):
        return one_hot(arr).reshape(arr.shape[0], N_BASES * length)
    if arr.ndim == 2 and arr.shape[1] == N_BASES * length:
        return arr.astype(np.float32, copy=False)
    if arr.ndim == 3 and arr.shape[1:] == (length, N_BASES):
        return arr.reshape(arr.shape[0], -1).astype(np.float32, copy=False)
    if arr.ndim == 3 and arr.shape[1:] == (N_BASES, length):
        return np.ascontiguousarray(arr.transpose(0, 2, 1)).reshape(arr.shape[0], -1).astype(np.float32, copy=False)
    raise ValueError(
        f"training windows of shape {arr.shape} {arr.dtype} do not match test windows of length {length}: "
        "give integer codes [N, L], one-hot [N, 4*L] (position-major), [N, L, 4] or [N, 4, L]"
    )


def pca_baseline(
    train: np.ndarray,
    codes_test: np.ndarray,
    n_components: int,
    seed: int = 0,
    svd_solver: str = "auto",
) -> dict[str, Any]:
    """PCA with as many components as the autoencoder latent, as a reconstruction baseline.

    PCA is fitted on the one-hot training windows; each test window is
    projected, reconstructed, and its bases read back as the argmax of the
    four reconstructed channels at every position.

    Args:
        train: training windows, codes ``[N_train, L]`` or one-hot
            (``[N_train, 4*L]`` position-major, ``[N_train, L, 4]`` or ``[N_train, 4, L]``).
        codes_test: test windows, codes ``uint8 [N_test, L]``.
        n_components: number of components (the latent size of the model compared);
            at most ``min(N_train, 4*L)``.
        seed: ``random_state`` of the (randomized) SVD.
        svd_solver: passed to ``sklearn.decomposition.PCA`` (``"randomized"``
            is fast for few components on many windows).

    Returns:
        dict with
        ``pca`` (fitted ``sklearn.decomposition.PCA``),
        ``train_embedding`` ``float32 [N_train, n_components]``,
        ``test_embedding`` ``float32 [N_test, n_components]`` (for probing),
        ``test_reconstruction`` ``uint8 [N_test, L]`` (argmax bases),
        ``base_accuracy`` (float, fraction of non-N test bases recovered),
        ``window_accuracy`` ``float64 [N_test]`` (per-window accuracy; NaN for an all-N window),
        ``explained_variance_ratio`` ``float64 [n_components]``,
        ``n_components`` (int).
    """
    codes_test = as_codes(codes_test, "codes_test")
    n_test, length = codes_test.shape
    x_train = _train_matrix(train, length)
    max_comp = min(x_train.shape[0], x_train.shape[1])
    if not 1 <= n_components <= max_comp:
        raise ValueError(f"n_components must be in 1..{max_comp} (min of train windows and 4*L), got {n_components}")
    pca = PCA(n_components=n_components, svd_solver=svd_solver, random_state=seed)
    train_emb = pca.fit_transform(x_train).astype(np.float32, copy=False)
    x_test = one_hot(codes_test).reshape(n_test, N_BASES * length)
    test_emb = pca.transform(x_test)
    recon = pca.inverse_transform(test_emb).reshape(n_test, length, N_BASES)
    pred = np.argmax(recon, axis=2).astype(np.uint8)
    called = codes_test < CODE_N
    correct = (pred == codes_test) & called
    n_called = called.sum(axis=1)
    window_acc = np.divide(correct.sum(axis=1), n_called, out=np.full(n_test, np.nan), where=n_called > 0)
    total = called.sum()
    return {
        "pca": pca,
        "train_embedding": train_emb,
        "test_embedding": test_emb.astype(np.float32, copy=False),
        "test_reconstruction": pred,
        "base_accuracy": float(correct.sum() / total) if total else float("nan"),
        "window_accuracy": window_acc,
        "explained_variance_ratio": np.asarray(pca.explained_variance_ratio_, dtype=np.float64),
        "n_components": int(n_components),
    }


def kmer_baseline_features(codes: np.ndarray, k: int | Iterable[int] = 4, canonical: bool = False) -> np.ndarray:
    """k-mer frequency features of raw sequence, the "what the sequence carries" baseline for probes.

    Args:
        codes: base codes ``uint8 [N, L]``.
        k: one k-mer length, or several (their frequencies are concatenated).
        canonical: merge reverse complements.

    Returns:
        ``float32 [N, 4**k]`` (or the concatenation over the ks; fewer columns
        when canonical), each k's block summing to 1 per window.
    """
    if isinstance(k, (int, np.integer)):
        return kmer_frequencies(codes, int(k), canonical=canonical)
    return multi_k_frequencies(codes, k, canonical=canonical)
