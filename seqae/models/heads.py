"""Classifier heads on latent blocks, gradient reversal, and the adversarial ramp.

A supervised head asks a block to carry its own label (``chrom`` block ->
chromosome). An adversarial head asks it *not* to carry another block's label:
the head itself learns to predict the label (minimising its cross-entropy),
while the gradient reversal layer in front of it hands the encoder the
negated, scaled gradient, so the encoder learns to make that prediction fail
(Ganin & Lempitsky 2015, domain-adversarial training).

The *confusion* objective is the bounded alternative (Tzeng et al. 2015;
Alvi et al. 2018): the adversary still learns the label, but the encoder
descends the KL divergence from the label frequencies to the adversary's
prediction, which is zero once the block tells the adversary nothing. Gradient
reversal instead ascends the adversary's cross-entropy without bound: an
encoder can keep raising it by making the block confidently misleading, which
is information too, and the growing gradient can swamp the reconstruction.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch import distributed as dist
from torch.nn import functional as F


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``-lambda``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, lambda_: float) -> Tensor:
        ctx.lambda_ = float(lambda_)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.lambda_ * grad, None


def reverse_gradient(x: Tensor, lambda_: float) -> Tensor:
    """``x`` unchanged in the forward pass; ``d/dx`` becomes ``-lambda_ * d/dx`` in the backward pass."""
    return _ReverseGradient.apply(x, lambda_)


class GradientReversal(nn.Module):
    """Gradient reversal layer with a strength ``lambda_`` that the caller sets each step.

    Args:
        lambda_: initial strength (>= 0); 0 blocks the gradient entirely.
    """

    def __init__(self, lambda_: float = 1.0):
        super().__init__()
        self.lambda_ = float(lambda_)

    def set_lambda(self, lambda_: float) -> None:
        """Set the strength for the next forward passes."""
        self.lambda_ = float(lambda_)

    def forward(self, x: Tensor) -> Tensor:
        return reverse_gradient(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}"


class _CapHeadGradient(torch.autograd.Function):
    """Identity on (decoder input, latent); backward caps the latent's gradient relative to the decoder input's."""

    @staticmethod
    def forward(
        ctx: Any, decoder_input: Tensor, latent: Tensor, cap: float, applied: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        ctx.cap = float(cap)
        ctx.applied = applied
        return decoder_input.view_as(decoder_input), latent.view_as(latent)

    @staticmethod
    def backward(ctx: Any, grad_decoder: Tensor, grad_heads: Tensor) -> tuple[Tensor, Tensor, None, None]:
        squares = torch.stack([grad_decoder.float().pow(2).sum(), grad_heads.float().pow(2).sum()])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # The norms of the whole batch, not of this process's share: every
            # process then scales by the same factor, as one process would.
            dist.all_reduce(squares)
        norms = squares.sqrt()
        scale = (ctx.cap * norms[0] / norms[1].clamp_min(1e-30)).clamp(max=1.0)
        if ctx.applied is not None:
            ctx.applied.copy_(scale)  # on the device: no synchronisation
        return grad_decoder, grad_heads * scale.to(grad_heads.dtype), None, None


def cap_head_gradient(
    decoder_input: Tensor, latent: Tensor, cap: float, applied: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Both tensors unchanged forward; backward scales the gradient reaching ``latent`` so that
    its norm is at most ``cap`` times the norm of the gradient reaching ``decoder_input``.

    The heads read ``latent`` and the decoder reads ``decoder_input`` (the same
    tensor for a plain or VQ model; the VAE's sample beside its mean). The
    sequence cross-entropy is a mean over the window's bases, so its gradient
    on the latent is tiny beside a per-window classification loss: on the
    demo, after the first 100 steps of the small model, 1e-4 against the
    supervised heads' 5e-2. The encoder, which sees the sum, then learns the
    labels and not the sequence. Capping the heads' share per batch (norms
    over the whole ``[B, D]`` gradient, summed over processes under
    data-parallel training) keeps the two in proportion at any loss scale;
    the heads' own parameters still learn from their full gradient.

    Args:
        decoder_input: ``[B, D]`` what the decoder reads.
        latent: ``[B, D]`` what the heads read.
        cap: the largest ratio of the two gradient norms, > 0.
        applied: optional 0-dim float tensor; the backward pass writes into it
            the factor it applied to the heads' gradient (1: the cap did not
            bind), so a trainer can log how hard the cap works.

    Returns:
        ``(decoder_input, latent)``, to be used in their place.
    """
    if cap <= 0:
        raise ValueError(f"the head gradient cap must be > 0, got {cap}")
    return _CapHeadGradient.apply(decoder_input, latent, cap, applied)


class ClassifierHead(nn.Module):
    """Small MLP: ``[B, in_dim] -> logits [B, n_classes]`` (Linear, GELU, dropout, Linear).

    Args:
        in_dim: size of the latent block it reads.
        n_classes: number of label categories.
        hidden: width of the hidden layer.
        dropout: dropout on the hidden layer.
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"a classifier head needs at least one class, got {n_classes}")
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class AdversarialHead(nn.Module):
    """Gradient reversal followed by a :class:`ClassifierHead`.

    Train it with the ordinary cross-entropy: the classifier's parameters
    descend it, everything upstream of the block ascends it, ``lambda_`` times as hard.
    """

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 64, dropout: float = 0.0, lambda_: float = 1.0):
        super().__init__()
        self.grl = GradientReversal(lambda_)
        self.classifier = ClassifierHead(in_dim, n_classes, hidden, dropout)

    @property
    def lambda_(self) -> float:
        """Current gradient-reversal strength."""
        return self.grl.lambda_

    def set_lambda(self, lambda_: float) -> None:
        """Set the gradient-reversal strength."""
        self.grl.set_lambda(lambda_)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.grl(x))

    def encoder_logits(self, x: Tensor) -> Tensor:
        """Logits through the classifier with its parameters frozen for this pass:
        gradients reach ``x`` (the encoder), never the adversary."""
        params = {name: p.detach() for name, p in self.classifier.named_parameters()}
        return torch.func.functional_call(self.classifier, params, (x,))


def confusion_loss(logits: Tensor, target: Tensor, ignore: int = -1) -> Tensor:
    """KL divergence from the label frequencies to the predicted distribution, mean over known rows (nats).

    Args:
        logits: ``[B, n_classes]`` adversary logits.
        target: ``int [B]`` labels; ``ignore`` marks unknown ones (left out,
            also of the frequencies).

    Returns:
        A float32 scalar >= 0; 0 when every known row's prediction equals the
        batch's label frequencies (the adversary has learnt nothing from the
        block), and when no row has a label.
    """
    known = target != ignore
    n_classes = logits.shape[-1]
    counts = F.one_hot(target.clamp_min(0).long(), n_classes).float() * known[:, None]
    prior = counts.sum(0) / counts.sum().clamp_min(1.0)
    log_q = F.log_softmax(logits.float(), dim=-1)
    # sum_c p_c (log p_c - log q_c), with 0 log 0 = 0
    log_p = torch.where(prior > 0, prior.clamp_min(1e-12).log(), torch.zeros_like(prior))
    kl = (prior * (log_p - log_q)).sum(-1)
    return (kl * known).sum() / known.sum().clamp_min(1)


def label_correlation_loss(block: Tensor, target: Tensor, n_classes: int, ignore: int = -1) -> Tensor:
    """Squared correlations between a block's coordinates and a label's class indicators, on the batch.

    ``sum_j corr(z_j, 1[y = c])^2``, averaged over the classes present in the
    batch (rows with ``ignore`` left out). Zero means the class-conditional
    means of every coordinate are equal, and then no *linear* classifier of
    the block beats a constant guess (linear guardedness; Belrose et al.
    2023, LEACE): exactly what the held-out linear probes that judge a block
    test. Unlike an adversary it cannot be fooled by hiding the label in
    directions a trained head has not found yet, but it says nothing about
    non-linear read-outs (the adversaries' accuracy, still logged, does).

    Args:
        block: ``[B, d]`` latent block.
        target: ``int [B]`` labels in ``0..n_classes-1`` or ``ignore``.
        n_classes: number of label classes.

    Returns:
        A float32 scalar in ``[0, d]`` (about ``d / B`` for a block unrelated
        to the label: sampling noise); 0 with fewer than two known rows.
    """
    # Masks instead of boolean indexing: no host-device synchronisation in a training step.
    known = (target != ignore).float()[:, None]  # [B, 1]
    n = known.sum().clamp_min(1.0)
    z = block.float()
    z = (z - (known * z).sum(0) / n) * known
    y = F.one_hot(target.clamp_min(0).long(), n_classes).float() * known
    y = (y - y.sum(0) / n) * known
    cov = z.T @ y / n  # [d, C]
    # eps inside the root: a constant coordinate (or a class absent from the
    # batch) has variance 0, where sqrt's gradient is infinite.
    var_z = z.pow(2).sum(0) / n
    var_y = y.pow(2).sum(0) / n
    corr = cov / ((var_z[:, None] * var_y[None, :]) + 1e-12).sqrt()
    # Classes absent from the batch (or all of it) have covariance 0: they add nothing.
    present = (var_y > 0).sum().clamp_min(1)
    return corr.pow(2).sum() / present


RAMP_SHAPES = ("sigmoid", "linear")


def adversarial_lambda(step: int, weight: float, warmup_steps: int, shape: str = "sigmoid") -> float:
    """Gradient-reversal strength at training ``step``: a ramp from 0 to ``weight``.

    ``p = min(step / warmup_steps, 1)``; ``linear`` gives ``weight * p``,
    ``sigmoid`` gives the DANN schedule ``weight * (2 / (1 + exp(-10 p)) - 1)``,
    rescaled to reach ``weight`` exactly at p = 1 (0 at p = 0, 0.46 * weight at
    p = 0.1, 0.99 * weight at p = 0.5): a soft start while the heads are still
    random, then full strength for the second half of the warm-up.
    """
    if shape not in RAMP_SHAPES:
        raise ValueError(f"ramp shape must be one of {RAMP_SHAPES}, got {shape!r}")
    p = 1.0 if warmup_steps <= 0 else min(max(step, 0) / warmup_steps, 1.0)
    if shape == "linear":
        return weight * p
    return weight * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0) / _SIGMOID_END


_SIGMOID_END = 2.0 / (1.0 + math.exp(-10.0)) - 1.0
