"""The latent side of :class:`~seqae.models.context_decoder.ContextDecoder`: what the local codes and the
global blocks make of every position, and the outputs read from the latent alone (tracks, direct head).

Channels last (``[B, L, H]``, H = ``hidden``): the local code vectors
``[B, d, L']`` go through a convolution and the latent tower at the stride,
are repeated ``stride`` times and get a learnt vector per phase within the
stride (``u``); the global latent ``[B, D]`` gives a FiLM scale and shift per
channel (``gamma``, ``beta``, ``[B, 1, H]``). ``keep`` 0 switches all of it
off for a window.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["LatentConditioningMixin"]


class LatentConditioningMixin:
    """The latent-side methods of :class:`~seqae.models.context_decoder.ContextDecoder`.

    The decoder holds the attributes below (annotated only: a class-level value
    would shadow the submodules and parameters ``nn.Module`` keeps in its own registry).
    """

    window_len: int
    stride: int
    hidden: int
    context_table: nn.Embedding
    local_in: nn.Conv1d | None
    latent_tower: nn.ModuleList
    phase: nn.Parameter
    film: nn.Linear | None
    direct_layers: nn.ModuleList | None
    direct_head: nn.Linear | None
    track_conv: nn.Conv1d | None
    track_head: nn.Linear | None

    def _latent_features(self, local: Tensor | None, batch: int, dtype: torch.dtype) -> Tensor:
        """``[B, L, H]``: the local codes' contribution at every base (zeros without a local latent)."""
        phase = self.phase.to(dtype).repeat(-(-self.window_len // self.stride), 1)[: self.window_len]
        if self.local_in is None or local is None:
            return phase.unsqueeze(0).expand(batch, -1, -1)
        u = self.local_in(local.to(dtype))  # [B, H, L']
        for conv in self.latent_tower:
            u = u + conv(F.gelu(u))
        # Channels last in memory: every per-position layer after this reads u (and h, made
        # from it) contiguously; a transposed view made each of them copy or stride (1.4x slower).
        u = u.repeat_interleave(self.stride, dim=2)[..., : self.window_len].transpose(1, 2).contiguous()
        return u + phase

    def _film(self, global_latent: Tensor | None, batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """(gamma, beta) ``[B, 1, H]`` each from the global latent ``[B, D]``; zeros without one."""
        if self.film is None or global_latent is None:
            zero = torch.zeros(batch, 1, self.hidden, device=device)
            return zero, zero
        gamma, beta = self.film(global_latent).unsqueeze(1).chunk(2, dim=-1)  # [B, 1, H] each
        return gamma, beta

    def _conditioning(
        self, local: Tensor | None, global_latent: Tensor | None, keep: Tensor | None, batch: int, device: torch.device
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(u, gamma, beta) with the latent switched off where ``keep`` is 0; u ``[B, L, H]``, the others ``[B, 1, H]``."""
        dtype = self.context_table.weight.dtype
        u = self._latent_features(local, batch, dtype)
        gamma, beta = self._film(global_latent, batch, device)
        if keep is not None:
            k = keep.view(-1, 1, 1).to(u.dtype)
            u, gamma, beta = u * k, gamma * k, beta * k
        return u, gamma, beta

    def _direct(self, u: Tensor, gamma: Tensor, beta: Tensor) -> Tensor | None:
        """Logits ``[B, L, 4]`` from the latent alone (no previous base), or None without a direct head."""
        if self.direct_layers is None or self.direct_head is None:
            return None
        h = u * (1 + gamma) + beta
        for layer in self.direct_layers:
            h = layer(h)
        return self.direct_head(F.layer_norm(h, h.shape[-1:]))

    def _tracks(self, u: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """Track predictions ``[B, T, L]`` from the latent side alone (``[B, 0, L]`` without tracks)."""
        batch = u.shape[0]
        if self.track_conv is None or self.track_head is None:
            return u.new_zeros(batch, 0, self.window_len)
        t = self.track_conv(u.transpose(1, 2)).transpose(1, 2)
        t = F.gelu(t * (1 + gamma) + beta)
        return self.track_head(t).transpose(1, 2)
