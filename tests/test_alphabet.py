"""The shared base alphabet: one-hot, complement and reverse complement, for NumPy arrays and torch tensors alike."""

from __future__ import annotations

import numpy as np
import torch

from seqae.alphabet import BASES, CODE_N, complement, one_hot, reverse_complement
from seqae.genome import decode, encode


def test_codes_and_n() -> None:
    assert BASES[CODE_N] == "N"
    assert decode(encode("ACGTN")) == "ACGTN"


def test_one_hot_numpy_and_torch_agree_with_n_all_zero() -> None:
    codes = np.array([[0, 1, 2, 3, 4, 7]], dtype=np.uint8)
    want = np.zeros((1, 6, 4), dtype=np.float32)
    want[0, np.arange(4), np.arange(4)] = 1.0  # rows 4 (N) and 5 (above N) stay zero
    np.testing.assert_array_equal(one_hot(codes), want)
    got = one_hot(torch.from_numpy(codes))
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), want)
    assert one_hot(torch.from_numpy(codes), torch.float64).dtype == torch.float64


def test_reverse_complement_keeps_n_and_the_kind_of_array() -> None:
    seq = "AACGTNG"
    want = "CNACGTT"
    codes = encode(seq)
    assert decode(reverse_complement(codes)) == want
    assert reverse_complement(codes).dtype == np.uint8
    assert decode(reverse_complement(torch.from_numpy(codes.copy())).numpy()) == want
    assert decode(complement(codes)) == "TTGCANC"
