"""DNA codes for aligned families of homologous sequences.

Codes are ``uint8``: ``A=0, C=1, G=2, T=3`` (``U`` is read as ``T``), as in
:mod:`seqae.genome`, and :data:`CODE_MISSING` ``= 4`` for anything that is not
one definite base: the IUPAC ambiguity codes (``N R Y S W K M B D H V``) and
alignment gaps (``-`` and ``.``). Lower case is read as upper case. Distances
ignore missing codes pair by pair.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ASCII_TO_CODE", "BASES", "CODE_MISSING", "VALID_BYTES", "decode", "encode"]

BASES = "ACGT"
CODE_MISSING = 4
#: Every byte a family's sequence lines may hold (IUPAC DNA/RNA, gaps), both cases.
VALID_BYTES = b"ACGTURYSWKMBDHVN-." + b"acgturyswkmbdhvn"


def _code_table() -> np.ndarray:
    """ASCII byte -> code; 255 marks a byte outside :data:`VALID_BYTES`."""
    table = np.full(256, 255, dtype=np.uint8)
    for byte in VALID_BYTES:
        table[byte] = CODE_MISSING
    for code, base in enumerate(b"ACGT"):
        table[base] = code
        table[base + 32] = code
    table[ord("U")] = table[ord("u")] = 3
    return table


ASCII_TO_CODE = _code_table()


def encode(seq: str | bytes) -> np.ndarray:
    """Aligned DNA text -> ``uint8`` codes ``[len(seq)]``.

    Raises ValueError at the first byte outside :data:`VALID_BYTES` (callers
    that read files check first and report the file line).
    """
    raw = np.frombuffer(seq.encode("ascii", "replace") if isinstance(seq, str) else seq, dtype=np.uint8)
    codes = ASCII_TO_CODE[raw]
    bad = np.flatnonzero(codes == 255)
    if bad.size:
        pos = int(bad[0])
        raise ValueError(f"character {chr(raw[pos])!r} at position {pos + 1} is not IUPAC DNA")
    return codes


def decode(codes: np.ndarray, missing: str = "N") -> str:
    """``uint8`` codes ``[L]`` -> text of length L (missing codes -> ``missing``)."""
    lut = np.frombuffer(b"ACGT" + missing.encode("ascii"), dtype=np.uint8)
    return lut[np.minimum(np.asarray(codes), CODE_MISSING)].tobytes().decode("ascii")
