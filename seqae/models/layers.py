"""Convolutional building blocks shared by the encoder and the decoder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqae.models.settings import NORMS, POOLINGS


def make_norm(kind: str, channels: int) -> nn.Module:
    """A normalisation layer over ``[B, C, L]``.

    ``batch`` is the fastest and the usual choice; ``group`` (up to 8 groups)
    does not depend on the other windows in the batch, which suits small
    batches and keeps CPC/InfoMax negatives from leaking through batch statistics.
    """
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ResidualBlock(nn.Module):
    """Pre-activation dilated residual block (Basenji/BPNet style), length-preserving.

    ``x + conv1x1(drop(GELU(norm(conv_k,d(GELU(norm(x)))))))`` on ``[B, C, L]``.
    The last 1x1 conv starts at zero so that a deep stack starts as the identity
    and trains stably without warm-up.

    Args:
        channels: C.
        kernel_size: odd width of the dilated conv (positions).
        dilation: spacing of the conv taps (positions).
        norm: ``batch`` or ``group``.
        dropout: dropout rate before the 1x1 conv.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for a length-preserving conv, got {kernel_size}")
        self.norm1 = make_norm(norm, channels)
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2))
        self.norm2 = make_norm(norm, channels)
        self.drop = nn.Dropout(dropout)
        self.mix = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, L] -> [B, C, L]``."""
        h = self.conv(F.gelu(self.norm1(x)))
        h = self.mix(self.drop(F.gelu(self.norm2(h))))
        return x + h


class MeanMaxPool(nn.Module):
    """Mean and max over positions, concatenated: ``[B, C, L] -> [B, 2C]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.out_dim = 2 * channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)


class AttentionPool(nn.Module):
    """Softmax-weighted average over positions, one weighting per head: ``[B, C, L] -> [B, heads * C]``.

    Lets the encoder focus on a motif wherever it sits in the window, where a
    plain mean would dilute it over 1000 bp.
    """

    def __init__(self, channels: int, n_heads: int = 2):
        super().__init__()
        self.score = nn.Conv1d(channels, n_heads, 1)
        self.out_dim = n_heads * channels

    def forward(self, x: Tensor) -> Tensor:
        weights = torch.softmax(self.score(x).float(), dim=-1).to(x.dtype)  # [B, H, L]; softmax in fp32
        pooled = torch.einsum("bhl,bcl->bhc", weights, x)
        return pooled.flatten(1)


class PositionalPool(nn.Module):
    """Keeps where each feature sits: ``[B, C, L] -> [B, width * L]``.

    A 1x1 conv narrows the C channels to ``width``, then the positions are
    flattened, so the linear map to the latent that follows is position-specific
    (the mirror of the decoder's first layer). Mean/max or attention pooling
    forget positions: a latent made that way can carry a window's composition
    and which motifs it holds, but not where its bases are, so it cannot
    reconstruct the sequence better than a composition model can. Needs a fixed
    input length ``length`` (positions after downsampling).
    """

    def __init__(self, channels: int, length: int, width: int = 16):
        super().__init__()
        self.length = length
        self.narrow = nn.Conv1d(channels, width, 1)
        self.out_dim = width * length

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.length:
            raise ValueError(f"positional pooling was built for {self.length} positions, got {x.shape[-1]}")
        return self.narrow(x).flatten(1)


class PositionalMeanMaxPool(nn.Module):
    """:class:`PositionalPool` and :class:`MeanMaxPool` side by side: ``[B, C, L] -> [B, width * L + 2C]``.

    Window-level labels (species, chromosome, gene family) are mostly a
    matter of composition, which a mean over positions hands the latent
    directly; a position-specific map has to learn to sum 125 positions for
    it. Reconstruction needs the positions. With both, the latent's linear
    map reads either.
    """

    def __init__(self, channels: int, length: int, width: int = 16):
        super().__init__()
        self.positional = PositionalPool(channels, length, width)
        self.meanmax = MeanMaxPool(channels)
        self.out_dim = self.positional.out_dim + self.meanmax.out_dim

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.positional(x), self.meanmax(x)], dim=-1)


@dataclass(frozen=True)
class TowerShape:
    """The residual convolutions the encoder and the convolutional decoder share (the ``models`` keys of the same names).

    Attributes:
        channels: C, width of the convs at the lowest resolution (narrower towards full length).
        n_res_blocks: residual blocks in the dilated tower at the lowest resolution.
        kernel_size: odd width of the residual convs (positions).
        dilations: dilation of tower block i is ``dilations[i % len(dilations)]``.
        norm: ``batch`` or ``group``.
        dropout: dropout inside the residual blocks.
    """

    channels: int = 64
    n_res_blocks: int = 4
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    norm: str = "batch"
    dropout: float = 0.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TowerShape:
        """The shape a model's filled settings give."""
        return cls(
            settings["channels"],
            settings["n_res_blocks"],
            settings["kernel_size"],
            tuple(settings["dilations"]),
            settings["norm"],
            settings["dropout"],
        )

    def block(self, channels: int, dilation: int = 1) -> ResidualBlock:
        """One residual block of this shape's kernel, norm and dropout, ``channels`` wide."""
        return ResidualBlock(channels, self.kernel_size, dilation, self.norm, self.dropout)

    def dilated_tower(self, reverse: bool = False) -> nn.Sequential:
        """The ``n_res_blocks`` dilated blocks at the lowest resolution (``reverse``: dilations from the
        largest down, as the decoder mirrors the encoder)."""
        dilations = self.dilations[::-1] if reverse else self.dilations
        return nn.Sequential(
            *(self.block(self.channels, dilations[i % len(dilations)]) for i in range(self.n_res_blocks))
        )


#: The default shape (frozen, so one instance serves every default argument).
DEFAULT_TOWER = TowerShape()


def make_pool(
    kind: str, channels: int, length: int | None = None
) -> MeanMaxPool | AttentionPool | PositionalPool | PositionalMeanMaxPool:
    """``positional``, ``positional_meanmax``, ``meanmax`` or ``attention`` pooling over ``length`` positions;
    ``.out_dim`` is the pooled size.

    ``length`` is needed by the positional kinds only (the others take any length).
    """
    if kind in ("positional", "positional_meanmax"):
        if length is None:
            raise ValueError(f"{kind} pooling needs the number of positions (a fixed window length)")
        return PositionalPool(channels, length) if kind == "positional" else PositionalMeanMaxPool(channels, length)
    if kind == "meanmax":
        return MeanMaxPool(channels)
    if kind == "attention":
        return AttentionPool(channels)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {kind!r}")


def n_stages(factor: int) -> int:
    """Number of x2 stages for a total down/upsampling ``factor`` (a power of two)."""
    if factor < 1 or factor & (factor - 1):
        raise ValueError(f"down/upsampling factor must be a power of two, got {factor}")
    return factor.bit_length() - 1


def level_widths(channels: int, factor: int, min_channels: int = 32) -> list[int]:
    """Conv width at each resolution level, from full length (level 0) to ``1/factor`` (level S).

    Width doubles with each halving of the length, ending at ``channels`` at
    the lowest resolution and never below ``min(min_channels, channels)``
    (U-Net style): most positions sit at full length, so this is where the
    compute goes, and the per-base layers need far fewer features than the
    dilated tower. 64 channels, factor 8 -> [32, 32, 32, 64].
    """
    stages = n_stages(factor)
    floor = min(min_channels, channels)
    return [max(channels >> (stages - level), floor) for level in range(stages + 1)]
