"""Latent block swaps: decode window A with window B's block (the lectures' "voice conversion").

An autoencoder whose latent is split into named blocks (``chrom | gene |
residual``) can rebuild window A with one block taken from window B: if the
``chrom`` block really carries the chromosome and nothing else, the decoded
window keeps A's content but reads as if it came from B's chromosome. Whether
it does is judged by a classifier that never saw the autoencoder
(:func:`seqae.metrics.judge.swap_success`).

Everything is batched: the latents of all windows are computed in batches,
the block is swapped for all rows at once (:meth:`LatentLayout.swap`), and the
decoder runs in batches; nothing loops over windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["decode_latents", "encode_windows", "swap_blocks", "swap_latents"]


def _as_index(donor_index: Any, n: int, device: torch.device) -> Tensor:
    index = torch.as_tensor(np.asarray(donor_index) if not isinstance(donor_index, Tensor) else donor_index)
    index = index.to(device=device, dtype=torch.long).reshape(-1)
    if index.shape[0] != n:
        raise ValueError(f"donor_index must have one entry per window ({n}), got {index.shape[0]}")
    if n and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f"donor_index must lie in 0..{n - 1}")
    return index


@torch.inference_mode()
def encode_windows(model: torch.nn.Module, seq: Tensor, tracks: Tensor, batch_size: int = 256) -> Tensor:
    """Deterministic latents ``float32 [N, D]`` of windows, in batches, on the model's device.

    Args:
        model: a :class:`~seqae.models.SequenceAutoencoder` (put in eval mode here).
        seq: ``int [N, L]`` base codes, cropped to the model's ``window_len``.
        tracks: ``float [N, T, L]`` on the stored scale.
        batch_size: windows per forward pass.
    """
    model.eval()
    device = next(model.parameters()).device
    parts = [
        model.encode(seq[lo : lo + batch_size].to(device).long(), tracks[lo : lo + batch_size].to(device).float())
        for lo in range(0, seq.shape[0], batch_size)
    ]
    if not parts:
        return torch.zeros(0, model.layout.dim, device=device)
    return torch.cat(parts)


def swap_latents(layout: Any, latent: Tensor, donor_index: Any, block: str) -> Tensor:
    """``latent [N, D]`` with block ``block`` of row ``i`` replaced by that of row ``donor_index[i]``.

    Args:
        layout: the model's :class:`~seqae.models.layout.LatentLayout`.
        latent: ``[N, D]`` latents.
        donor_index: ``int [N]``: the row each recipient takes the block from.
        block: a block name of ``layout``.
    """
    index = _as_index(donor_index, latent.shape[0], latent.device)
    return layout.swap(latent, latent[index], block)


@torch.inference_mode()
def swap_blocks(
    model: torch.nn.Module,
    seq: Tensor,
    tracks: Tensor,
    donor_index: Any,
    block: str,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """Decode every window with one latent block taken from another window.

    Window ``i`` (the recipient) is encoded, its block ``block`` is replaced by
    the block of window ``donor_index[i]`` (the donor) and the result decoded.
    ``donor_index[i] == i`` is the plain reconstruction.

    Args:
        model: a :class:`~seqae.models.SequenceAutoencoder`; put in eval mode here.
        seq: ``int [N, L]`` base codes, cropped to the model's ``window_len``.
        tracks: ``float [N, T, L]`` signal on the windows file's stored scale.
        donor_index: ``int [N]`` (tensor, array or list): donor row of each recipient, in ``0..N-1``.
        block: name of the latent block to swap (e.g. ``"chrom"``).
        batch_size: windows per encoder / decoder pass (bounds device memory).

    Returns:
        ``(seq_logits float32 [N, 4, L], tracks_pred float32 [N, T, L])`` on the
        model's device: exactly what ``model.decode`` returns for the swapped
        latents (:func:`seqae.models.decoder.bases_from_logits` gives the decoded bases;
        ``model.tracks_to_stored(tracks_pred)`` the tracks on the stored scale).

    Raises:
        KeyError: no block of that name.
        ValueError: ``donor_index`` of the wrong length or out of range.
    """
    if block not in model.layout:
        model.layout.slice(block)  # raises the KeyError that lists the blocks
    latent = encode_windows(model, seq, tracks, batch_size)
    swapped = swap_latents(model.layout, latent, donor_index, block)
    return decode_latents(model, swapped, batch_size)


@torch.inference_mode()
def decode_latents(model: torch.nn.Module, latent: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """``model.decode`` in batches: ``latent [N, D]`` -> ``(seq_logits float32 [N, 4, L], tracks_pred float32 [N, T, L])``.

    The latents are moved to the model's device; the outputs stay there.
    """
    model.eval()
    device = next(model.parameters()).device
    latent = latent.to(device)
    logits, track_parts = [], []
    for lo in range(0, latent.shape[0], batch_size):
        s, t = model.decode(latent[lo : lo + batch_size])
        logits.append(s.float())
        track_parts.append(t.float())
    if not logits:
        return (
            torch.zeros(0, 4, model.window_len, device=device),
            torch.zeros(0, model.n_tracks, model.window_len, device=device),
        )
    return torch.cat(logits), torch.cat(track_parts)
