"""Decoder: latent vector -> per-base sequence logits and per-base track predictions."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqae.models.layers import DEFAULT_TOWER, TowerShape, level_widths, make_norm
from seqae.models.settings import UPSAMPLE_MODES


def bases_from_logits(seq_logits: Tensor, sample: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Decoded bases ``int64 [N, L]`` (codes 0..3 = A, C, G, T) from sequence logits ``[N, 4, L]``.

    ``sample=True`` draws each base from the decoder's softmax, independently
    per position; ``False`` takes the most likely base.  Sampling is what a
    probabilistic decoder's output means: where the decoder is unsure (a
    window reconstructed at about its base composition) the most likely base
    is the same one nearly everywhere, and the arg-max window has a k-mer
    spectrum no real window has, while samples keep the composition and every
    position-specific preference the decoder learnt.

    Args:
        seq_logits: ``[N, 4, L]`` logits (any float dtype; softmax in float32).
        sample: draw from the softmax (True) or take the arg-max (False).
        generator: random generator on the logits' device (None: the default one); unused for the arg-max.
    """
    n, _, length = seq_logits.shape
    if not sample:
        return seq_logits.argmax(1)
    probs = torch.softmax(seq_logits.float(), dim=1).transpose(1, 2).reshape(-1, 4)
    return torch.multinomial(probs, 1, generator=generator).view(n, length)


class SequenceDecoder(nn.Module):
    """Mirror of :class:`~seqae.models.encoder.SequenceEncoder`.

    Layout (C = ``channels``, S = log2(``upsample``), ``L0 = ceil(L / upsample)``,
    widths ``w_i`` as in the encoder, narrowing towards full length)::

        latent [B, D] -> linear -> [B, C, L0]
        -> dilated tower: n_res_blocks residual blocks (dilations in reverse order)
        -> S stages; stage i: norm, GELU, x2 upsample w_i -> w_{i-1} (nearest + conv k=3,
                              or transposed conv k=4), one residual block (dilation 1)
        -> crop to L, norm, GELU, conv (kernel_size) of width w_0, GELU
        -> 1x1 convs: sequence logits [B, 4, L] and track predictions [B, T, L]

    The linear map is position-specific (a separate C-vector per output
    position), so the decoder knows where in the window it is.

    Args:
        latent_dim: D.
        n_tracks: T (0 gives an empty ``[B, 0, L]`` track output).
        window_len: L, output length (bp); need not be divisible by ``upsample``
            (the decoder makes ``L0 * upsample >= L`` positions and crops the end).
        tower: the residual convolutions, as for the encoder (its dilations in reverse order).
        upsample: total length increase, a power of two (the encoder's ``downsample``).
        upsample_mode: ``nearest`` (nearest-neighbour x2 then a conv; no checkerboard
            artefacts) or ``transposed`` (stride-2 transposed conv).

    Track predictions are on the scale the track loss expects: the stored value
    for ``mse``, the log-rate of raw counts for ``poisson``
    (see :func:`seqae.models.objectives.tracks_to_stored`).
    """

    def __init__(
        self,
        latent_dim: int,
        n_tracks: int,
        window_len: int,
        tower: TowerShape = DEFAULT_TOWER,
        upsample: int = 8,
        upsample_mode: str = "nearest",
    ):
        super().__init__()
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample_mode must be one of {UPSAMPLE_MODES}, got {upsample_mode!r}")
        channels, norm, kernel_size = tower.channels, tower.norm, tower.kernel_size
        self.window_len = window_len
        self.n_tracks = n_tracks
        self.channels = channels
        widths = level_widths(channels, upsample)
        self.start_len = -(-window_len // upsample)
        self.from_latent = nn.Linear(latent_dim, channels * self.start_len)
        self.tower = tower.dilated_tower(reverse=True)

        def up(w_in: int, w_out: int) -> nn.Module:
            if upsample_mode == "nearest":
                return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(w_in, w_out, 3, padding=1))
            return nn.ConvTranspose1d(w_in, w_out, 4, stride=2, padding=1)

        self.stages = nn.ModuleList(
            nn.Sequential(make_norm(norm, w_in), nn.GELU(), up(w_in, w_out), tower.block(w_out))
            for w_in, w_out in zip(widths[:0:-1], widths[-2::-1], strict=True)
        )
        self.out_norm = make_norm(norm, widths[0])
        self.refine = nn.Conv1d(widths[0], widths[0], kernel_size, padding=kernel_size // 2)
        self.seq_head = nn.Conv1d(widths[0], 4, 1)
        # Conv1d refuses zero output channels; a track-less dataset gets an empty output instead.
        self.track_head = nn.Conv1d(widths[0], n_tracks, 1) if n_tracks else None

    def forward(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """``latent [B, D]`` -> ``(seq_logits [B, 4, L], tracks_pred [B, T, L])``."""
        h = self.from_latent(latent).view(latent.shape[0], self.channels, self.start_len)
        h = self.tower(h)
        for stage in self.stages:
            h = stage(h)
        h = h[..., : self.window_len]
        h = F.gelu(self.refine(F.gelu(self.out_norm(h))))
        seq_logits = self.seq_head(h)
        if self.track_head is None:
            tracks_pred = seq_logits.new_zeros(h.shape[0], 0, self.window_len)
        else:
            tracks_pred = self.track_head(h)
        return seq_logits, tracks_pred
