"""Training-time augmentation on batches, on whatever device the batch is on.

Random draws use ``generator`` when given; it must live on the batch's device
(``torch.Generator(device=seq.device)``), because drawing on the CPU and
copying to the GPU would make every step wait for the host. Without a
generator the device's default generator is used (seeded by ``torch.manual_seed``).

Base codes: A=0 C=1 G=2 T=3 N=4. ``seq`` is ``int [B, L]``, ``tracks`` is
``float [B, T, L]`` (T may be 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqae import alphabet
from seqae.alphabet import CODE_N


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"generator is on {generator.device.type} but the batch is on {device.type}; "
            f"make it with torch.Generator(device={device.type!r}) so no draw goes through the host"
        )


def reverse_complement(seq: Tensor, tracks: Tensor) -> tuple[Tensor, Tensor]:
    """Reverse complement of every window: codes 0<->3, 1<->2, N stays N; positions reversed.

    Tracks are reversed along positions only: ChIP-seq coverage is unstranded,
    so the minus strand sees the same signal in the opposite order.
    """
    rc = alphabet.reverse_complement(seq)
    return rc, tracks.flip(-1)


def random_reverse_complement(
    seq: Tensor, tracks: Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Reverse-complement each window independently with probability ``p`` (vectorised)."""
    _check_generator(generator, seq.device)
    flip = torch.rand(seq.shape[0], generator=generator, device=seq.device) < p
    rc_seq, rc_tracks = reverse_complement(seq, tracks)
    return torch.where(flip[:, None], rc_seq, seq), torch.where(flip[:, None, None], rc_tracks, tracks)


def crop_at(seq: Tensor, tracks: Tensor, offsets: Tensor, window_len: int) -> tuple[Tensor, Tensor]:
    """``seq[b, o_b : o_b + window_len]`` (and the same for tracks) for per-window offsets ``int [B]``, by gather."""
    index = offsets.to(seq.device).long()[:, None] + torch.arange(window_len, device=seq.device)  # [B, W]
    out_seq = seq.gather(1, index)
    out_tracks = tracks.gather(2, index[:, None, :].expand(tracks.shape[0], tracks.shape[1], window_len))
    return out_seq, out_tracks


def random_crop(
    seq: Tensor,
    tracks: Tensor,
    window_len: int,
    generator: torch.Generator | None = None,
    return_offsets: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
    """A random ``window_len`` slice of each window, offsets uniform in ``[0, seq_len - window_len]``.

    Jitter augmentation: the stored flanks let the window shift by up to
    ``flank`` bp either way. Returns ``(seq [B, W], tracks [B, T, W])``, plus
    the offsets ``int64 [B]`` when ``return_offsets``.

    Raises:
        ValueError: ``window_len`` longer than the stored windows.
    """
    _check_generator(generator, seq.device)
    seq_len = seq.shape[-1]
    if window_len > seq_len:
        raise ValueError(f"cannot crop {window_len} bp from windows of {seq_len} bp")
    offsets = torch.randint(0, seq_len - window_len + 1, (seq.shape[0],), generator=generator, device=seq.device)
    out_seq, out_tracks = crop_at(seq, tracks, offsets, window_len)
    return (out_seq, out_tracks, offsets) if return_offsets else (out_seq, out_tracks)


def centre_crop(seq: Tensor, tracks: Tensor, window_len: int) -> tuple[Tensor, Tensor]:
    """The middle ``window_len`` bases (offset ``(seq_len - window_len) // 2``): the window proper
    when the stored flanks are symmetric. A view, no copy."""
    seq_len = seq.shape[-1]
    if window_len > seq_len:
        raise ValueError(f"cannot crop {window_len} bp from windows of {seq_len} bp")
    start = (seq_len - window_len) // 2
    return seq[..., start : start + window_len], tracks[..., start : start + window_len]


def corrupt(
    seq: Tensor,
    tracks: Tensor,
    substitution_rate: float = 0.05,
    mask_rate: float = 0.05,
    track_noise: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Noisy copies of the inputs for a denoising autoencoder; the inputs themselves are not modified.

    Each position is independently masked to N with probability ``mask_rate``,
    or else (probability ``substitution_rate``) replaced by one of the three
    *other* bases, uniformly; N positions are never substituted. Tracks get
    Gaussian noise of standard deviation ``track_noise`` (units of the stored
    transform). Train against the clean ``seq``/``tracks``.

    Raises:
        ValueError: rates outside [0, 1] or summing to more than 1, negative noise.
    """
    if not (0 <= substitution_rate <= 1 and 0 <= mask_rate <= 1 and substitution_rate + mask_rate <= 1):
        raise ValueError(f"substitution_rate {substitution_rate} and mask_rate {mask_rate} must be in [0, 1], sum <= 1")
    if track_noise < 0:
        raise ValueError(f"track_noise must be >= 0, got {track_noise}")
    _check_generator(generator, seq.device)
    # One uniform draw per position decides between mask, substitution and nothing,
    # so the two events are exclusive and each happens at exactly its rate.
    u = torch.rand(seq.shape, generator=generator, device=seq.device)
    shift = torch.randint(1, 4, seq.shape, generator=generator, device=seq.device)
    called = seq < CODE_N
    substituted = torch.where(called, (seq + shift) % 4, seq)
    out = torch.where((u >= mask_rate) & (u < mask_rate + substitution_rate), substituted, seq)
    out = torch.where(u < mask_rate, torch.full_like(seq, CODE_N), out)
    noisy = tracks
    if track_noise > 0 and tracks.numel():
        noise = torch.randn(tracks.shape, generator=generator, device=tracks.device, dtype=tracks.dtype)
        noisy = tracks + track_noise * noise
    return out, noisy
