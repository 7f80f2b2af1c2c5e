"""seqae.models.generation: windows sampled from a VAE's prior."""

from __future__ import annotations

import pytest
import torch

from seqae.models import SequenceAutoencoder
from tests.models.conftest import LABELS, batch, tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_vae_encode_is_deterministic_and_generate_returns_valid_codes() -> None:
    model = SequenceAutoencoder(tiny_settings(kind="vae", track_loss="poisson"), 2, 64, LABELS).eval()
    seq, tracks, _ = batch(4, 64)
    torch.testing.assert_close(model.encode(seq, tracks), model.encode(seq, tracks), rtol=0, atol=0)
    codes, generated = model.generate(5, torch.Generator().manual_seed(3))
    assert codes.shape == (5, 64) and codes.dtype == torch.int64
    assert codes.min() >= 0 and codes.max() <= 3
    assert generated.shape == (5, 2, 64) and (generated >= 0).all()  # log1p of a rate
    again, _ = model.generate(5, torch.Generator().manual_seed(3))
    assert torch.equal(codes, again)
    greedy, _ = model.generate(2, sample_bases=False)
    assert greedy.shape == (2, 64)
    for kind in ("plain", "vq"):
        with pytest.raises(ValueError, match="prior of a VAE"):
            SequenceAutoencoder(tiny_settings(kind=kind), 2, 64, LABELS).generate(2)
