"""DNA codes for aligned families of homologous sequences.

Codes are ``uint8``: ``A=0, C=1, G=2, T=3`` (``U`` is read as ``T``), as in
:mod:`seqae.genome`, and :data:`CODE_MISSING` ``= 4`` for anything that is not
one definite base: the IUPAC ambiguity codes (``N R Y S W K M B D H V``) and
alignment gaps (``-`` and ``.``) and ``?`` (missing). Lower case is read as upper case. Distances
ignore missing codes pair by pair.

The likelihood keeps more: :func:`partial_codes` reads text into codes 0..14,
codes 5..14 for the two- and three-base ambiguity codes ``R Y S W K M B D H V``
(see :mod:`seqae.phylo.patterns`); :func:`partial_text` writes them back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "AMBIGUITY_BASES",
    "ASCII_TO_CODE",
    "BASES",
    "CODE_MISSING",
    "VALID_BYTES",
    "decode",
    "encode",
    "partial_codes",
    "partial_text",
]

BASES = "ACGT"
CODE_MISSING = 4
#: Every byte a family's sequence lines may hold (IUPAC DNA/RNA, gaps, ``?`` for missing
#: as PHYLIP and NEXUS write it), both cases.
VALID_BYTES = b"ACGTURYSWKMBDHVN-.?" + b"acgturyswkmbdhvn"


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


#: The two- and three-base IUPAC codes (codes 5..14, in this order) and their bases.
AMBIGUITY_BASES = {
    "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG",
}  # fmt: skip
#: Code -> letter written for it (missing as N).
_CODE_LETTERS = "ACGTN" + "".join(AMBIGUITY_BASES)


def _text_table() -> np.ndarray:
    """ASCII byte -> code 0..14; 255 outside IUPAC DNA/RNA and gaps (``?`` is missing too)."""
    table = np.full(256, 255, dtype=np.uint8)
    for code, letter in enumerate(_CODE_LETTERS):
        table[ord(letter)] = table[ord(letter.lower())] = code
    for letter in "Uu":
        table[ord(letter)] = 3
    for letter in "-.?":
        table[ord(letter)] = CODE_MISSING
    return table


_TEXT_TO_CODE = _text_table()


def partial_codes(sequences: Sequence[str]) -> np.ndarray:
    """Aligned sequence text -> ``[n, L]`` uint8 codes 0..14 that keep the ambiguity codes.

    Raises:
        ValueError: sequences of unequal lengths, or a character outside IUPAC
            DNA (named with its record and column).
    """
    lengths = {len(x) for x in sequences}
    if len(lengths) != 1:
        raise ValueError(f"sequences have different lengths {sorted(lengths)[:3]}: not an alignment")
    codes = np.stack([_TEXT_TO_CODE[np.frombuffer(x.encode("latin-1"), dtype=np.uint8)] for x in sequences])
    bad = np.argwhere(codes == 255)
    if bad.size:
        row, col = (int(v) for v in bad[0])
        raise ValueError(f"record {row + 1}, column {col + 1}: {sequences[row][col]!r} is not IUPAC DNA")
    return codes


def partial_text(codes: np.ndarray) -> str:
    """Codes ``[L]`` (0..14) -> sequence text (missing as ``N``)."""
    lut = np.frombuffer(_CODE_LETTERS.encode("ascii"), dtype=np.uint8)
    return lut[np.asarray(codes, dtype=np.int64)].tobytes().decode("ascii")
