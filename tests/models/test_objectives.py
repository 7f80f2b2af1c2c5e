"""seqae.models.objectives: masked classification, sequence and track losses, InfoMax and CPC."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from seqae.models.objectives import (
    CPCHead,
    InfoMaxDiscriminator,
    masked_cross_entropy,
    reconstruction_error,
    sequence_error,
    sequence_loss,
    track_error,
    tracks_to_stored,
)
from tests.models.conftest import encode_str

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_masked_cross_entropy_ignores_unknown_labels() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    target = torch.tensor([-1, 2, -1])
    loss, acc = masked_cross_entropy(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits[1:2], target[1:2]))
    loss.backward()
    assert torch.equal(logits.grad[[0, 2]], torch.zeros(2, 4))
    assert acc.item() == float(logits[1].argmax() == 2)
    none_known, none_acc = masked_cross_entropy(logits, torch.full((3,), -1))
    assert none_known.item() == 0.0 and none_acc.item() == 0.0  # not NaN


def test_sequence_loss_ignores_n_positions() -> None:
    seq = encode_str("ACGNNT").unsqueeze(0)
    logits = torch.randn(1, 4, 6)
    changed = logits.clone()
    changed[..., 3:5] = 100.0 * torch.randn(4, 2)
    torch.testing.assert_close(sequence_loss(logits, seq), sequence_loss(changed, seq))
    manual = F.cross_entropy(logits[0, :, [0, 1, 2, 5]].T, seq[0, [0, 1, 2, 5]])
    torch.testing.assert_close(sequence_loss(logits, seq), manual)
    assert sequence_error(logits, torch.full((1, 6), 4)).item() == 0.0  # all N: 0, not NaN


def test_track_losses_and_inversion() -> None:
    stored = torch.rand(2, 3, 10) * 3  # log1p values
    assert track_error(stored, stored, "mse").abs().max() == 0
    raw = torch.expm1(stored)
    perfect_log_rate = torch.log(raw)
    torch.testing.assert_close(
        track_error(perfect_log_rate, stored, "poisson", "log1p"), torch.zeros(2), atol=1e-5, rtol=0
    )
    assert (track_error(perfect_log_rate + 0.5, stored, "poisson", "log1p") > 0).all()
    torch.testing.assert_close(tracks_to_stored(perfect_log_rate, "poisson", "log1p"), stored, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(tracks_to_stored(perfect_log_rate, "poisson", "none"), raw, atol=1e-4, rtol=1e-4)
    seq = torch.randint(0, 4, (2, 10))
    logits = torch.randn(2, 4, 10)
    score = reconstruction_error(logits, stored + 1, seq, stored, "mse", "log1p", track_weight=2.0)
    torch.testing.assert_close(score, sequence_error(logits, seq) + 2.0)


def test_infomax_and_cpc_objectives() -> None:
    torch.manual_seed(0)
    features = torch.randn(6, 16, 24, requires_grad=True)
    latent = torch.randn(6, 8, requires_grad=True)
    infomax = InfoMaxDiscriminator(16, 8, hidden=16)
    loss, acc = infomax(features, latent, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and 0 <= acc.item() <= 1
    loss.backward()
    assert latent.grad.abs().sum() > 0 and features.grad.abs().sum() > 0
    assert infomax(features[:1], latent[:1])[0].item() == 0.0  # no negatives in a batch of one

    cpc = CPCHead(16, n_future=3, chunk=4, dim=8)
    features.grad = None
    loss, acc = cpc(features)
    assert torch.isfinite(loss) and 0 <= acc.item() <= 1
    loss.backward()
    assert features.grad[..., :24].abs().sum() > 0
    assert cpc(torch.randn(2, 16, 7))[0].item() == 0.0  # a single chunk: nothing to predict
    # learnable: a few steps on a structured sequence of features raise the accuracy
    opt = torch.optim.Adam(cpc.parameters(), lr=1e-2)
    smooth = torch.cumsum(torch.randn(8, 16, 40), dim=-1).detach()
    first = cpc(smooth)[0].item()
    for _ in range(30):
        opt.zero_grad()
        loss, _ = cpc(smooth)
        loss.backward()
        opt.step()
    assert loss.item() < first
