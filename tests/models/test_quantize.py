"""seqae.models.quantize: nearest codes, straight-through gradient, perplexity, dead-code restarts and EMA codebooks."""

from __future__ import annotations

import pytest
import torch

from seqae.models.quantize import VectorQuantizer

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _hand_quantizer(commitment: float = 0.25, dead_code_steps: int = 0) -> VectorQuantizer:
    vq = VectorQuantizer(dim=4, codebook_size=3, n_groups=2, commitment=commitment, dead_code_steps=dead_code_steps)
    book = torch.tensor(
        [
            [[0.0, 0.0], [1.0, 1.0], [-2.0, 0.5]],
            [[3.0, 0.0], [0.0, -1.0], [0.5, 0.5]],
        ]
    )
    vq.codebook.copy_(book)
    vq.ema_sum.copy_(book)
    vq.initialised.fill_(True)
    return vq


def test_vq_forward_is_nearest_code_and_gradient_is_straight_through() -> None:
    vq = _hand_quantizer(commitment=0.25)
    z = torch.tensor([[0.9, 1.2, 0.4, 0.6], [-1.5, 0.2, 2.0, 0.1]], requires_grad=True)
    out = vq(z, update=False)
    # brute force nearest code per group
    expected_codes = torch.tensor([[1, 2], [2, 0]])
    assert torch.equal(out.codes, expected_codes)
    expected_q = torch.stack([torch.cat([vq.codebook[g, expected_codes[b, g]] for g in range(2)]) for b in range(2)])
    torch.testing.assert_close(out.quantized, expected_q, rtol=0, atol=1e-6)
    torch.testing.assert_close(vq.lookup(out.codes), expected_q)
    # d/dz [sum(w * q_st) + beta * mean((z - sg(q))^2)] = w + 2 beta (z - q) / numel
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.1, 0.2, -0.3, 0.4]])
    ((out.quantized * w).sum() + out.loss).backward()
    expected_grad = w + 2 * 0.25 * (z.detach() - expected_q) / z.numel()
    torch.testing.assert_close(z.grad, expected_grad)
    torch.testing.assert_close(out.loss, 0.25 * ((z.detach() - expected_q) ** 2).mean())


def test_vq_perplexity_of_uniform_usage_is_codebook_size() -> None:
    vq = _hand_quantizer()
    # each code of each group once: z row k = (code k of group 0, code k of group 1)
    z = vq.codebook.transpose(0, 1).reshape(3, 4).clone()
    out = vq(z, update=False)
    assert out.perplexity.item() == pytest.approx(3.0, rel=1e-5)
    assert out.usage.item() == 1.0
    collapsed = vq(z[:1].expand(6, 4), update=False)
    assert collapsed.perplexity.item() == pytest.approx(1.0) and collapsed.usage.item() == pytest.approx(1 / 3)


def test_vq_dead_code_is_restarted_from_encoder_outputs() -> None:
    vq = _hand_quantizer(dead_code_steps=2)
    vq.codebook[0, 2] = torch.tensor([1000.0, 1000.0])  # far from every input: never chosen
    vq.ema_sum[0, 2] = vq.codebook[0, 2]
    vq.train()
    g = torch.Generator().manual_seed(0)
    # group 0: inputs near codes 0 and 1 only; group 1: near each of its three codes
    near0 = vq.codebook[0, torch.tensor([0, 1] * 3)]
    near1 = vq.codebook[1, torch.tensor([0, 1, 2] * 2)]
    z = torch.cat([near0, near1], dim=1) + 0.05 * torch.randn(6, 4, generator=g)
    restarted = [vq(z).restarted.item() for _ in range(3)]
    assert restarted == [0, 0, 1]
    assert vq.codebook[0, 2].abs().max() < 5  # now among the encoder outputs
    assert vq.steps_unused[0, 2] == 0
    out = vq(z, update=False)
    assert (out.codes[:, 0] == 2).any()  # and in use


def test_vq_initialises_codebook_from_data_and_ema_moves_codes() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=4, codebook_size=4, n_groups=2, decay=0.5)
    z = torch.randn(32, 4) + 10.0
    vq.train()
    out = vq(z)
    assert bool(vq.initialised) and out.restarted.item() == 0  # the data init is not a restart
    assert (vq.codebook > 5).all()  # codes now live where the data is
    for _ in range(10):
        vq(z)
    # EMA codes are means of their assigned inputs
    codes = vq(z, update=False).codes
    for g in range(2):
        for k in codes[:, g].unique():
            members = z[codes[:, g] == k][:, 2 * g : 2 * g + 2]
            torch.testing.assert_close(vq.codebook[g, k], members.mean(0), rtol=0.05, atol=0.05)
