"""Vector quantisation of a latent block (VQ-VAE) with EMA codebooks and dead-code restarts.

Choices, and why:

* **Groups, one codebook per group.** A block ``[B, D]`` is cut into
  ``n_groups`` chunks of ``d = D / n_groups`` and chunk ``g`` is quantised
  against its own codebook ``[K, d]`` (product quantisation): ``K ** n_groups``
  combinations from ``n_groups * K`` codes. Per-group rather than shared
  codebooks because each group is a fixed set of latent coordinates with its
  own meaning; a shared vocabulary would force different slots to use the same
  codes, and per-group usage tells which slots are alive. The autoencoder uses
  one quantiser per named latent block, so codes never mix factors.
* **EMA codebook updates** (van den Oord et al. 2017, appendix; Razavi et al.
  2019) instead of a codebook loss: codes follow the running mean of the
  encoder outputs assigned to them. The codebook is a buffer, so the
  optimiser's learning rate and weight decay never touch it, and the only loss
  is the commitment term ``beta * ||z - sg(q)||^2``.
* **Straight-through estimator**: the forward pass outputs the nearest code,
  the backward pass hands the gradient of the output to ``z`` unchanged.
* **Dead-code restart**: a code unused for ``dead_code_steps`` consecutive
  updating forward passes is re-initialised to a random encoder output of the
  current batch (same group). Before the first update every code is "dead", so
  the codebook starts from data.
* Distances, EMA statistics and the loss are computed in float32 even under
  autocast, and nothing in the forward pass synchronises with the host.

EMA statistics are per process: under data-parallel training each replica
updates its own codebook from its own shard (no all-reduce here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass
class QuantizerOutput:
    """Result of :meth:`VectorQuantizer.forward`.

    Attributes:
        quantized: ``float32 [B, D]``, the nearest codes, with straight-through gradient to the input.
        codes: ``int64 [B, G]``, index of the chosen code in each group.
        loss: float32 scalar, ``commitment * mean((z - sg(q))^2)`` (already scaled by beta).
        perplexity: 0-dim, ``exp(entropy)`` of the batch's code histogram, mean over groups
            (K when every code is used equally, 1 when one code takes everything).
        usage: 0-dim, fraction of codes used at least once in the batch, mean over groups.
        restarted: 0-dim int64, codes re-initialised in this pass (0 when not updating).
    """

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    perplexity: Tensor
    usage: Tensor
    restarted: Tensor


def training_options(vq: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :class:`VectorQuantizer` that tune how its codebook trains
    (``commitment``, ``decay``, ``dead_code_steps``), from a model's ``vq`` settings."""
    return {key: vq[key] for key in ("commitment", "decay", "dead_code_steps")}


class VectorQuantizer(nn.Module):
    """Grouped vector quantiser with EMA codebooks, commitment loss and dead-code restart.

    Args:
        dim: D, size of the vectors to quantise.
        codebook_size: K, codes per group.
        n_groups: G; ``dim`` must be divisible by it.
        commitment: beta of the commitment loss.
        decay: EMA decay of the codebook statistics, in [0, 1).
        dead_code_steps: restart a code after this many consecutive updating passes
            without use; 0 never restarts (except the initial data-dependent init).
        eps: Laplace smoothing of the EMA counts.

    Buffers: ``codebook [G, K, d]``, ``ema_count [G, K]``, ``ema_sum [G, K, d]``,
    ``steps_unused [G, K]``, ``initialised`` (0-dim bool).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int = 64,
        n_groups: int = 1,
        commitment: float = 0.25,
        decay: float = 0.99,
        dead_code_steps: int = 200,
        eps: float = 1e-5,
    ):
        super().__init__()
        if dim % n_groups:
            raise ValueError(f"dim {dim} is not divisible by n_groups {n_groups}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.n_groups = n_groups
        self.group_dim = dim // n_groups
        self.commitment = commitment
        self.decay = decay
        self.dead_code_steps = dead_code_steps
        self.eps = eps
        codebook = torch.randn(n_groups, codebook_size, self.group_dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(n_groups, codebook_size))
        self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("steps_unused", torch.zeros(n_groups, codebook_size, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(False))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, n_groups={self.n_groups}, "
            f"commitment={self.commitment}, decay={self.decay}, dead_code_steps={self.dead_code_steps}"
        )

    def lookup(self, codes: Tensor) -> Tensor:
        """Code indices ``int [B, G]`` -> vectors ``float32 [B, D]``."""
        groups = torch.arange(self.n_groups, device=codes.device)
        return self.codebook[groups, codes].flatten(1)

    def nearest(self, z: Tensor) -> Tensor:
        """Index of the nearest code per group: ``[B, D] -> int64 [B, G]`` (squared Euclidean, float32)."""
        x = z.float().view(z.shape[0], self.n_groups, self.group_dim)
        with torch.autocast(device_type=z.device.type, enabled=False):
            # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; ||x||^2 is constant per row and dropped.
            dots = torch.einsum("bgd,gkd->bgk", x, self.codebook)
            dist = self.codebook.pow(2).sum(-1).unsqueeze(0) - 2.0 * dots
        return dist.argmin(dim=-1)

    def forward(self, z: Tensor, update: bool | None = None) -> QuantizerOutput:
        """Quantise ``z [B, D]``.

        Args:
            z: encoder outputs (any float dtype).
            update: update the EMA codebook and restart dead codes; defaults to
                ``self.training``. Pass False for deterministic encoding.
        """
        update = self.training if update is None else update
        batch = z.shape[0]
        with torch.autocast(device_type=z.device.type, enabled=False):
            x = z.float().view(batch, self.n_groups, self.group_dim)
            restarted = torch.zeros((), dtype=torch.long, device=z.device)
            if update and batch:
                restarted = self._restart_dead(x.detach())
            codes = self.nearest(z)
            groups = torch.arange(self.n_groups, device=z.device)
            q = self.codebook[groups, codes]  # [B, G, d], a copy: later in-place updates do not change it
            onehot = F.one_hot(codes, self.codebook_size).float()  # [B, G, K]
            counts = onehot.sum(0)  # [G, K]
            probs = counts / max(batch, 1)
            perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)).mean()
            usage = (counts > 0).float().mean()
            loss = self.commitment * F.mse_loss(x, q.detach())
            if update and batch:
                self._ema_update(x.detach(), onehot, counts)
            quantized = x + (q - x).detach()  # straight-through: forward q, backward identity
        return QuantizerOutput(quantized.view(batch, self.dim), codes, loss, perplexity, usage, restarted)

    @torch.no_grad()
    def _restart_dead(self, x: Tensor) -> Tensor:
        """Re-initialise dead (or never initialised) codes from random rows of ``x [B, G, d]``; return how many.

        Vectorised over every code and masked with ``torch.where``, so there is
        no data-dependent branch and no host synchronisation.
        """
        dead = (
            self.steps_unused >= self.dead_code_steps
            if self.dead_code_steps > 0
            else torch.zeros_like(self.initialised)
        )
        dead = dead | ~self.initialised
        rows = torch.randint(0, x.shape[0], (self.n_groups, self.codebook_size), device=x.device)
        candidates = x[rows, torch.arange(self.n_groups, device=x.device).unsqueeze(1)]  # [G, K, d]
        self.codebook.copy_(torch.where(dead.unsqueeze(-1), candidates, self.codebook))
        self.ema_sum.copy_(torch.where(dead.unsqueeze(-1), candidates, self.ema_sum))
        self.ema_count.copy_(torch.where(dead, torch.ones_like(self.ema_count), self.ema_count))
        self.steps_unused.masked_fill_(dead, 0)
        restarted = (dead & self.initialised).sum()  # the initial data init is not a restart
        self.initialised.fill_(True)
        return restarted

    @torch.no_grad()
    def _ema_update(self, x: Tensor, onehot: Tensor, counts: Tensor) -> None:
        """EMA of counts and sums per code, Laplace-smoothed; usage bookkeeping for restarts."""
        d = self.decay
        self.ema_count.mul_(d).add_(counts, alpha=1 - d)
        self.ema_sum.mul_(d).add_(torch.einsum("bgk,bgd->gkd", onehot, x), alpha=1 - d)
        total = self.ema_count.sum(-1, keepdim=True)
        smoothed = (self.ema_count + self.eps) / (total + self.codebook_size * self.eps) * total
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(-1))
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
