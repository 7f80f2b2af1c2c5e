"""Input checks shared by the metric modules (private)."""

from __future__ import annotations

import numpy as np

from seqae.alphabet import CODE_N, N_BASES  # noqa: F401 - the metric modules import them from here


def as_codes(codes: np.ndarray, name: str = "codes") -> np.ndarray:
    """Base codes as a 2-D integer array ``[N, L]``.

    A 1-D array ``[L]`` becomes one window ``[1, L]``.  Codes ``>= 4`` are
    treated as N by every caller.

    Raises:
        ValueError: not 1-D/2-D, or not integer-typed, or negative codes.
    """
    arr = np.asarray(codes)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [N, L] base codes, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integer base codes (uint8 A=0 C=1 G=2 T=3 N=4), got {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(f"{name} contains negative codes")
    return arr


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a generator, a seed or ``None``."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def as_2d_features(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Features as float ``[N, D]`` (a 1-D array is one feature)."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
