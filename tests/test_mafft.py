"""seqae.mafft: a family aligned by MAFFT, and the one-line error without it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from seqae.errors import SeqaeError
from seqae.mafft import align_family
from tests.conftest import random_dna


@pytest.mark.skipif(shutil.which("mafft") is None, reason="MAFFT is not installed")
def test_mafft_aligns_windows_with_an_indel():
    rng = np.random.default_rng(1)
    base = random_dna(rng, 300)
    records = {"sp0": base, "sp1": base[:150] + base[160:], "sp2": base, "sp3": base[:80] + "ACGTA" + base[80:]}
    aligned = align_family(records)
    assert list(aligned) == list(records)
    assert len({len(s) for s in aligned.values()}) == 1
    assert aligned["sp1"].count("-") >= 10 and aligned["sp1"].replace("-", "") == records["sp1"]


def test_missing_mafft_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SeqaeError, match="MAFFT is not installed .* or set align: none"):
        align_family({"a": "ACGT", "b": "ACGT"})
