"""seqae.phylo.alphabet: alignment codes."""

from __future__ import annotations

import pytest

from seqae.phylo.alphabet import CODE_MISSING, decode, encode


def test_alphabet_codes() -> None:
    codes = encode("ACGTUacgtNRY-.")
    assert codes.tolist() == [0, 1, 2, 3, 3, 0, 1, 2, 3] + [CODE_MISSING] * 5
    assert decode(codes) == "ACGTTACGTNNNNN"
    with pytest.raises(ValueError, match="'X'"):
        encode("ACXT")
