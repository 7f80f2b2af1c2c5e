"""The base alphabet every part of seqae shares: codes, N, complement, one-hot and the ASCII table.

Windows hold bases as ``uint8`` codes A=0, C=1, G=2, T=3 and N=4 (any other
IUPAC letter, or a base not called); a code above 4 reads as N too. The
functions take NumPy arrays or torch tensors and return the same kind, on the
same device. This module imports nothing else from seqae, so ``models/`` and
``metrics/`` use it and stay at the bottom of the import order; nor does it
import torch: a tensor's module is already loaded (the data rules' environment
has no torch).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

#: Letters of codes 0-4.
BASES = "ACGTN"
#: Called bases (A, C, G, T): codes below this are bases, the rest N.
N_BASES = 4
#: The code of N.
CODE_N = 4


def _torch_of(codes: Any) -> Any:
    """The torch module when ``codes`` is a tensor, else None."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(codes, torch.Tensor) else None


def complement(codes: Any) -> Any:
    """The complement of base codes, any shape: A<->T, C<->G, N stays N."""
    if (torch := _torch_of(codes)) is not None:
        return torch.where(codes < CODE_N, 3 - codes, codes)
    codes = np.asarray(codes)
    return np.where(codes < CODE_N, 3 - codes, codes).astype(codes.dtype, copy=False)


def reverse_complement(codes: Any) -> Any:
    """The reverse complement of windows ``[..., L]``: complemented, positions reversed along the last axis."""
    done = complement(codes)
    return done.flip(-1) if _torch_of(codes) is not None else done[..., ::-1]


def one_hot(codes: Any, dtype: Any = None) -> Any:
    """Base codes ``[..., L]`` -> one-hot ``[..., L, 4]`` in the order A, C, G, T; N is an all-zero row.

    Args:
        codes: non-negative integer codes (NumPy array or torch tensor).
        dtype: of the result (default float32, NumPy's or torch's).
    """
    if (torch := _torch_of(codes)) is not None:
        rows = torch.nn.functional.one_hot(codes.long().clamp(0, CODE_N), N_BASES + 1)[..., :N_BASES]
        return rows.to(dtype or torch.float32)
    rows = np.vstack([np.eye(N_BASES), np.zeros((1, N_BASES))]).astype(dtype or np.float32)
    return rows[np.minimum(np.asarray(codes), CODE_N)]


_IUPAC = b"ACGTNRYSWKMBDHVU"


def _ascii_code_table() -> np.ndarray:
    """ASCII byte -> base code; 255 marks a byte that is not IUPAC DNA."""
    table = np.full(256, 255, dtype=np.uint8)
    for byte in _IUPAC + _IUPAC.lower():
        table[byte] = CODE_N
    for code, base in enumerate(b"ACGT"):
        table[base] = code
        table[base + 32] = code  # lower case (soft-masked repeats)
    return table


#: ASCII byte -> base code (IUPAC ambiguity letters -> N, 255: not IUPAC DNA).
ASCII_TO_CODE = _ascii_code_table()
