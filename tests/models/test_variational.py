"""seqae.models.variational: the Gaussian bottleneck and its KL."""

from __future__ import annotations

import pytest
import torch

from seqae.models import LatentLayout
from seqae.models.variational import GaussianBottleneck, kl_standard_normal

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_vae_kl_zero_at_prior_and_positive_elsewhere() -> None:
    assert torch.equal(kl_standard_normal(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3, 5))
    torch.testing.assert_close(kl_standard_normal(torch.ones(1), torch.zeros(1)), torch.tensor([0.5]))
    layout = LatentLayout({"a": 2, "b": 3})
    bottleneck = GaussianBottleneck(layout)
    zero = bottleneck(torch.zeros(4, 10), sample=True)
    assert torch.equal(zero.kl, torch.zeros(4))
    assert set(zero.kl_blocks) == {"a", "b"}
    h = torch.randn(4, 10)
    out = bottleneck(h, sample=False)
    assert (out.kl > 0).all() and torch.equal(out.z, out.mean)
    torch.testing.assert_close(out.kl, out.kl_blocks["a"] + out.kl_blocks["b"])
    assert bottleneck.sample_prior(7, torch.Generator().manual_seed(1)).shape == (7, 5)
