"""seqae.models.heads: gradient reversal, adversarial heads, the bounded adversarial losses, the head gradient
cap and the adversarial ramp."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from seqae.errors import ConfigError
from seqae.models import model_settings
from seqae.models.heads import (
    AdversarialHead,
    GradientReversal,
    adversarial_lambda,
    cap_head_gradient,
    confusion_loss,
    label_correlation_loss,
    reverse_gradient,
)

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gradient_reversal_sign_exact() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 3, requires_grad=True)
    weights = torch.randn(5, 3)

    def f(t: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(t) * weights).sum()

    (plain,) = torch.autograd.grad(f(x), x)
    layer = GradientReversal(1.0)
    for lam in (0.0, 0.3, 1.0, 2.5):
        layer.set_lambda(lam)
        y = layer(x)
        assert torch.equal(y, x)  # identity forward
        (reversed_,) = torch.autograd.grad(f(y), x)
        torch.testing.assert_close(reversed_, -lam * plain, rtol=0, atol=0)
    # in the middle of a graph: the upstream part sees -lambda x its ordinary gradient
    w_in = torch.randn(3, 3, requires_grad=True)
    (g_plain,) = torch.autograd.grad(f(x.detach() @ w_in), w_in)
    (g_rev,) = torch.autograd.grad(f(reverse_gradient(x.detach() @ w_in, 0.7)), w_in)
    torch.testing.assert_close(g_rev, -0.7 * g_plain)


def test_adversarial_head_trains_head_and_reverses_for_features() -> None:
    torch.manual_seed(0)
    head = AdversarialHead(4, 3, hidden=8, lambda_=0.5)
    z = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    F.cross_entropy(head(z), y).backward()
    grads_head = [p.grad.clone() for p in head.classifier.parameters()]
    grad_z = z.grad.clone()
    head.zero_grad()
    z.grad = None
    F.cross_entropy(head.classifier(z), y).backward()
    for a, b in zip(grads_head, head.classifier.parameters(), strict=True):
        torch.testing.assert_close(a, b.grad)  # the head itself descends its loss
    torch.testing.assert_close(grad_z, -0.5 * z.grad)  # the features ascend it


def test_confusion_loss_is_zero_at_the_label_frequencies() -> None:
    target = torch.tensor([0, 0, 0, 1, -1, -1])  # frequencies 3/4, 1/4; unknown rows ignored
    prior_logits = torch.log(torch.tensor([0.75, 0.25, 1e-9])).expand(6, 3)
    assert confusion_loss(prior_logits, target).item() == pytest.approx(0.0, abs=1e-6)
    confident = torch.tensor([[9.0, 0.0, 0.0]] * 3 + [[0.0, 9.0, 0.0]] + [[0.0, 0.0, 9.0]] * 2)
    assert confusion_loss(confident, target).item() > 1.0  # a block that gives the label away
    assert confusion_loss(confident, torch.full((6,), -1)).item() == 0.0  # no known label: nothing to hide


def test_label_correlation_loss_on_hand_made_blocks() -> None:
    """Zero when every class has the same mean on every coordinate; the block's size when each
    coordinate is a class indicator; unknown rows left out."""
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    balanced = torch.tensor([[1.0, 2.0], [-1.0, -2.0], [3.0, 0.5], [-3.0, -0.5], [0.2, 1.0], [-0.2, -1.0]])
    assert label_correlation_loss(balanced, y, 3).item() == pytest.approx(0.0, abs=1e-6)
    indicators = F.one_hot(y, 3).float()
    # Each indicator coordinate correlates fully with its class and partly with the others.
    want = sum(torch.corrcoef(torch.stack([indicators[:, j], indicators[:, c]]))[0, 1] ** 2
               for j in range(3) for c in range(3)) / 3  # fmt: skip
    assert label_correlation_loss(indicators, y, 3).item() == pytest.approx(float(want), rel=1e-5)
    noisy = torch.cat([balanced, torch.tensor([[50.0, 50.0]])])
    assert label_correlation_loss(noisy, torch.cat([y, torch.tensor([-1])]), 3).item() == pytest.approx(0.0, abs=1e-6)
    assert label_correlation_loss(balanced[:1], y[:1], 3).item() == 0.0
    # One class in the batch, or none known, and a constant coordinate: 0, with a finite gradient.
    z = torch.randn(6, 3, requires_grad=True)
    with_constant = torch.cat([z, torch.zeros(6, 1)], dim=1)
    for target in (torch.zeros(6, dtype=torch.long), torch.full((6,), -1)):
        loss = label_correlation_loss(with_constant, target, 3)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(z.grad).all()
    z.grad = None
    label_correlation_loss(with_constant, y, 3).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_cap_head_gradient_scales_only_the_heads_share_and_only_down() -> None:
    """Forward is the identity; backward scales the heads' gradient to cap x the decoder's norm when
    it is larger, and leaves it alone when it is smaller; the decoder's gradient is never touched."""
    x = torch.randn(5, 3, requires_grad=True)
    decoder_grad = torch.randn(5, 3)
    for heads_factor, cap in ((100.0, 0.5), (0.01, 0.5)):
        heads_grad = heads_factor * torch.randn(5, 3)
        applied = torch.full((), float("nan"))
        dec, heads = cap_head_gradient(x, x, cap, applied)
        assert torch.equal(dec, x) and torch.equal(heads, x)
        x.grad = None
        ((dec * decoder_grad).sum() + (heads * heads_grad).sum()).backward()
        scale = min(1.0, cap * decoder_grad.norm().item() / heads_grad.norm().item())
        torch.testing.assert_close(x.grad, decoder_grad + scale * heads_grad)
        assert applied.item() == pytest.approx(scale)  # the factor applied, for the trainer's log
        assert (scale < 1.0) == (heads_factor == 100.0)
    with pytest.raises(ValueError, match="cap must be > 0"):
        cap_head_gradient(x, x, 0.0)
    with pytest.raises(ConfigError, match="head_gradient_cap"):
        model_settings({"head_gradient_cap": -1.0})


def test_adversarial_ramp() -> None:
    assert adversarial_lambda(0, 0.5, 100) == 0.0
    assert adversarial_lambda(100, 0.5, 100) == pytest.approx(0.5, abs=1e-4)
    assert adversarial_lambda(10_000, 0.5, 100) == pytest.approx(0.5, abs=1e-4)
    assert adversarial_lambda(50, 0.5, 100, "linear") == pytest.approx(0.25)
    values = [adversarial_lambda(s, 1.0, 100) for s in range(0, 120, 10)]
    assert values == sorted(values)
    assert adversarial_lambda(5, 0.5, 0) == 0.5  # no warm-up
