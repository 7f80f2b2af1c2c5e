"""Base codes for the metrics tests."""

from __future__ import annotations

import numpy as np

from seqae.genome import encode
from seqae.metrics import foreign_windows


def codes_of(*seqs: str) -> np.ndarray:
    return np.stack([encode(s) for s in seqs])


def random_codes(rng: np.random.Generator, n: int, length: int, gc: float = 0.5) -> np.ndarray:
    return foreign_windows(n, length, gc, rng)
