"""seqae.swap: block swaps decode the hand-swapped latent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.models import SequenceAutoencoder
from seqae.swap import swap_blocks
from tests.conftest import tiny_model

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_swap_blocks_equals_decoding_the_hand_swapped_latent() -> None:
    torch.manual_seed(1)
    length = 64
    model = SequenceAutoencoder(tiny_model(), 2, length, {"chrom": 3, "gene_family": 2}).eval()
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, 4, (10, length), generator=g)
    tracks = torch.rand(10, 2, length, generator=g)
    donor = torch.randperm(10, generator=g)
    with torch.inference_mode():
        z = model.encode(seq, tracks)
        by_hand = z.clone()
        by_hand[:, 0:4] = z[donor, 0:4]  # the chrom block is the first 4 coordinates
        want_logits, want_tracks = model.decode(by_hand)
        plain_logits, _ = model.decode(z)
    logits, tracks_out = swap_blocks(model, seq, tracks, donor, "chrom", batch_size=3)  # batches of 3: same result
    assert logits.shape == (10, 4, length) and tracks_out.shape == (10, 2, length)
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tracks_out, want_tracks, rtol=1e-5, atol=1e-5)
    # Identity donors give the plain reconstruction; a numpy donor index works too.
    same, _ = swap_blocks(model, seq, tracks, np.arange(10), "gene")
    torch.testing.assert_close(same, plain_logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="no latent block"):
        swap_blocks(model, seq, tracks, donor, "nope")
    with pytest.raises(ValueError, match="one entry per window"):
        swap_blocks(model, seq, tracks, donor[:5], "chrom")
