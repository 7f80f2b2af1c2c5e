"""seqae.models.decoder: bases from the decoder's logits."""

from __future__ import annotations

import pytest
import torch

from seqae.models.decoder import bases_from_logits

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_bases_from_logits_samples_the_softmax_or_takes_the_argmax() -> None:
    # 2 windows x 20,000 positions: P(A, C, G, T) = (0.7, 0.1, 0.1, 0.1) in the first, a near-certain G in the second.
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1], [1e-9, 1e-9, 1.0, 1e-9]])
    logits = probs.log()[:, :, None].expand(2, 4, 20_000)
    drawn = bases_from_logits(logits, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (2, 20_000) and drawn.dtype == torch.int64
    frequencies = torch.bincount(drawn[0], minlength=4).double() / 20_000
    torch.testing.assert_close(frequencies, probs[0].double(), atol=0.01, rtol=0)  # 4.6 SE of 0.7 at n = 20,000
    assert torch.equal(drawn[1], torch.full((20_000,), 2))
    assert torch.equal(drawn, bases_from_logits(logits, generator=torch.Generator().manual_seed(0)))  # seeded
    # The arg-max is one base everywhere: the spectrum no real window has that sampling avoids.
    assert torch.equal(bases_from_logits(logits, sample=False), torch.tensor([0, 2])[:, None].expand(2, 20_000))
